"""MobileStyleGAN's generator modules as the original code computes them,
written from bes-dev/MobileStyleGAN.pytorch (core/models/mobile_synthesis_network.py
and core/models/modules/) for the tests (independent of hrops): the
oracle that hrops' layers and model must reproduce from the same state_dict.
The Haar IDWT is the closed form of pywt 'db1' with mode 'zero' as
fbcotter/pytorch_wavelets, pytorch_wavelets/dwt/lowlevel.py (sfb1d) computes it."""
import math

import torch
import torch.nn.functional as F
from torch import nn


def _linear_bias_one(style_dim, channels):
    lin = nn.Linear(style_dim, channels)
    lin.bias.data.fill_(1.0)
    return lin


def haar_idwt(low, high):
    """low (N, C, h, w), high (N, C, 3, h, w) with bands (LH, HL, HH)."""
    lh, hl, hh = high.unbind(2)
    out = low.new_empty(low.shape[0], low.shape[1], 2 * low.shape[2], 2 * low.shape[3])
    out[:, :, 0::2, 0::2] = (low + lh + hl + hh) / 2
    out[:, :, 0::2, 1::2] = (low + lh - hl - hh) / 2
    out[:, :, 1::2, 0::2] = (low - lh + hl - hh) / 2
    out[:, :, 1::2, 1::2] = (low - lh - hl + hh) / 2
    return out


class HaarFilters(nn.Module):
    """pytorch_wavelets DWTInverse's buffers (state_dict keys only)."""

    def __init__(self):
        super().__init__()
        r = 1 / math.sqrt(2)
        for name, taps, shape in (("g0_col", [r, r], (1, 1, 2, 1)), ("g1_col", [r, -r], (1, 1, 2, 1)),
                                  ("g0_row", [r, r], (1, 1, 1, 2)), ("g1_row", [r, -r], (1, 1, 1, 2))):
            self.register_buffer(name, torch.tensor(taps).view(shape))


class ModulatedConv2d(nn.Module):
    def __init__(self, cin, cout, style_dim, k, demodulate=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.modulation = _linear_bias_one(style_dim, cin)
        self.demodulate = demodulate
        if demodulate:
            self.register_buffer("style_inv", torch.randn(1, 1, cin, 1, 1))
        self.scale, self.padding = 1 / math.sqrt(cin * k * k), k // 2

    def forward(self, x, style):
        x = (self.scale * self.modulation(style))[:, :, None, None] * x
        x = F.conv2d(x, self.weight, padding=self.padding)
        if self.demodulate:
            w = self.weight.unsqueeze(0)
            d = torch.rsqrt((self.scale * self.style_inv * w).pow(2).sum([2, 3, 4]) + 1e-8)
            x = d[:, :, None, None] * x
        return x


class ModulatedDWConv2d(nn.Module):
    def __init__(self, cin, cout, style_dim, k, demodulate=True):
        super().__init__()
        self.weight_dw = nn.Parameter(torch.randn(cin, 1, k, k))
        self.weight_permute = nn.Parameter(torch.randn(cout, cin, 1, 1))
        self.modulation = _linear_bias_one(style_dim, cin)
        self.demodulate = demodulate
        if demodulate:
            self.register_buffer("style_inv", torch.randn(1, 1, cin, 1, 1))
        self.scale, self.padding = 1 / math.sqrt(cin * k * k), k // 2

    def forward(self, x, style):
        x = (self.scale * self.modulation(style))[:, :, None, None] * x
        x = F.conv2d(x, self.weight_dw, padding=self.padding, groups=x.shape[1])
        x = F.conv2d(x, self.weight_permute)
        if self.demodulate:
            w = (self.weight_dw.transpose(0, 1) * self.weight_permute).unsqueeze(0)
            d = torch.rsqrt((self.scale * self.style_inv * w).pow(2).sum([2, 3, 4]) + 1e-8)
            x = d[:, :, None, None] * x
        return x


class IDWTUpsample(nn.Module):
    def __init__(self, cin, style_dim):
        super().__init__()
        self.channels = cin // 4
        self.idwt = HaarFilters()
        self.modulation = _linear_bias_one(style_dim, cin)

    def forward(self, x, style):
        b, _, h, w = x.shape
        x = self.modulation(style)[:, :, None, None] * x
        return haar_idwt(x[:, :self.channels], x[:, self.channels:].view(b, self.channels, 3, h, w))


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image, noise):
        return image + self.weight * noise


class StyledConv2d(nn.Module):
    def __init__(self, cin, cout, style_dim, k, conv_module=ModulatedConv2d):
        super().__init__()
        self.conv = conv_module(cin, cout, style_dim, k)
        self.noise = NoiseInjection()
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x, style, noise):
        return F.leaky_relu(self.noise(self.conv(x, style), noise) + self.bias, 0.2)


class MultichannelImage(nn.Module):
    def __init__(self, cin, cout, style_dim):
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, style_dim, 1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x, style):
        return self.conv(x, style) + self.bias


class Block(nn.Module):
    def __init__(self, cin, cout, style_dim):
        super().__init__()
        self.up = IDWTUpsample(cin, style_dim)
        self.conv1 = StyledConv2d(cin // 4, cout, style_dim, 3, ModulatedDWConv2d)
        self.conv2 = StyledConv2d(cout, cout, style_dim, 3, ModulatedDWConv2d)
        self.to_img = MultichannelImage(cout, 12, style_dim)

    def forward(self, hidden, style, noise):
        hidden = self.up(hidden, style[:, 0])
        hidden = self.conv1(hidden, style[:, 0], noise[0])
        hidden = self.conv2(hidden, style[:, 1], noise[1])
        return hidden, self.to_img(hidden, style[:, 2])


class SynthesisNetwork(nn.Module):
    """W+ (N, 3 * blocks + 2, style_dim) -> RGB image, as MobileSynthesisNetwork."""

    def __init__(self, style_dim, channels):
        super().__init__()
        self.input = nn.Module()
        self.input.input = nn.Parameter(torch.randn(1, channels[0], 4, 4))
        self.conv1 = StyledConv2d(channels[0], channels[0], style_dim, 3)
        self.to_img1 = MultichannelImage(channels[0], 12, style_dim)
        self.layers = nn.ModuleList(Block(a, b, style_dim) for a, b in zip(channels, channels[1:]))
        self.idwt = HaarFilters()
        self.register_buffer("device_info", torch.zeros(1))

    def forward(self, style, noise):
        by_size = {n.shape[-1]: n for n in noise}
        hidden = self.input.input.repeat(style.shape[0], 1, 1, 1)
        hidden = self.conv1(hidden, style[:, 0], by_size[4])
        freq = self.to_img1(hidden, style[:, 1])
        for i, block in enumerate(self.layers):
            hidden, freq = block(hidden, style[:, 3 * i + 1: 3 * i + 4], by_size[2 ** (i + 3)])
        b, _, h, w = freq.shape
        return haar_idwt(freq[:, :3], freq[:, 3:].view(b, 3, 3, h, w))
