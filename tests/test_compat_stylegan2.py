"""hrops.compat.stylegan2 in a small module written the rosinality way
(EqualLinear with fused leaky ReLU, grouped ModulatedConv2d through
conv2d_gradfix, Blur/Upsample/Downsample through upfirdn2d), against the same
module on the pure-PyTorch fallback ops: identical outputs, gradients and R1
penalty gradients."""
import math
import sys
import types

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import hrops.compat.stylegan2 as compat
from hrops import ref


def _fallback_ops():
    """What rosinality's op package computes on CPU, from the definitions."""
    def upfirdn2d(input, kernel, up=1, down=1, pad=(0, 0)):
        pad = tuple(pad) * 2 if len(pad) == 2 else tuple(pad)
        return ref.upfirdn2d(input, kernel, up, up, down, down, *pad)

    def fused_leaky_relu(input, bias=None, negative_slope=0.2, scale=2 ** 0.5):
        return ref.fused_bias_leaky_relu(input, bias, negative_slope, scale)

    class FusedLeakyReLU(nn.Module):
        def __init__(self, channel, bias=True, negative_slope=0.2, scale=2 ** 0.5):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
            self.negative_slope, self.scale = negative_slope, scale

        def forward(self, input):
            return fused_leaky_relu(input, self.bias, self.negative_slope, self.scale)

    gradfix = types.SimpleNamespace(conv2d=F.conv2d, conv_transpose2d=F.conv_transpose2d)
    return types.SimpleNamespace(upfirdn2d=upfirdn2d, fused_leaky_relu=fused_leaky_relu,
                                 FusedLeakyReLU=FusedLeakyReLU, conv2d_gradfix=gradfix)


def make_kernel(k):
    k = torch.tensor(k, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def build(op):
    """A StyleGAN2-style block stack using only `op`'s names, as rosinality's code does."""

    class Blur(nn.Module):
        def __init__(self, kernel, pad, upsample_factor=1):
            super().__init__()
            self.register_buffer("kernel", make_kernel(kernel) * upsample_factor ** 2)
            self.pad = pad

        def forward(self, x):
            return op.upfirdn2d(x, self.kernel, pad=self.pad)

    class Upsample(nn.Module):
        def __init__(self, kernel, factor=2):
            super().__init__()
            self.factor = factor
            self.register_buffer("kernel", make_kernel(kernel) * factor ** 2)
            p = self.kernel.shape[0] - factor
            self.pad = ((p + 1) // 2 + factor - 1, p // 2)

        def forward(self, x):
            return op.upfirdn2d(x, self.kernel, up=self.factor, down=1, pad=self.pad)

    class Downsample(nn.Module):
        def __init__(self, kernel, factor=2):
            super().__init__()
            self.factor = factor
            self.register_buffer("kernel", make_kernel(kernel))
            p = self.kernel.shape[0] - factor
            self.pad = ((p + 1) // 2, p // 2)

        def forward(self, x):
            return op.upfirdn2d(x, self.kernel, up=1, down=self.factor, pad=self.pad)

    class EqualLinear(nn.Module):
        def __init__(self, in_dim, out_dim, bias_init=0, lr_mul=1, activation=None):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
            self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init))
            self.activation, self.lr_mul = activation, lr_mul
            self.scale = 1 / math.sqrt(in_dim) * lr_mul

        def forward(self, x):
            if self.activation:
                return op.fused_leaky_relu(F.linear(x, self.weight * self.scale),
                                           self.bias * self.lr_mul)
            return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)

    class ModulatedConv2d(nn.Module):
        def __init__(self, cin, cout, k, style_dim, demodulate=True, upsample=False,
                     downsample=False, blur_kernel=(1, 3, 3, 1)):
            super().__init__()
            self.k, self.cin, self.cout = k, cin, cout
            self.upsample, self.downsample, self.demodulate = upsample, downsample, demodulate
            if upsample:
                p = (len(blur_kernel) - 2) - (k - 1)
                self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
            if downsample:
                p = (len(blur_kernel) - 2) + (k - 1)
                self.blur = Blur(blur_kernel, pad=((p + 1) // 2, p // 2))
            self.scale = 1 / math.sqrt(cin * k ** 2)
            self.weight = nn.Parameter(torch.randn(1, cout, cin, k, k))
            self.modulation = EqualLinear(style_dim, cin, bias_init=1)

        def forward(self, x, style):
            batch, cin, h, w = x.shape
            style = self.modulation(style).view(batch, 1, cin, 1, 1)
            weight = self.scale * self.weight * style
            if self.demodulate:
                demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
                weight = weight * demod.view(batch, self.cout, 1, 1, 1)
            weight = weight.view(batch * self.cout, cin, self.k, self.k)
            if self.upsample:
                weight = weight.view(batch, self.cout, cin, self.k, self.k).transpose(1, 2)
                weight = weight.reshape(batch * cin, self.cout, self.k, self.k)
                out = op.conv2d_gradfix.conv_transpose2d(x.view(1, batch * cin, h, w), weight,
                                                         padding=0, stride=2, groups=batch)
                return self.blur(out.view(batch, self.cout, *out.shape[2:]))
            if self.downsample:
                x = self.blur(x)
                out = op.conv2d_gradfix.conv2d(x.view(1, batch * cin, *x.shape[2:]), weight,
                                               padding=0, stride=2, groups=batch)
            else:
                out = op.conv2d_gradfix.conv2d(x.view(1, batch * cin, h, w), weight,
                                               padding=self.k // 2, groups=batch)
            return out.view(batch, self.cout, *out.shape[2:])

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.mapping = nn.Sequential(EqualLinear(16, 16, lr_mul=0.01, activation="fused_lrelu"),
                                         EqualLinear(16, 16, lr_mul=0.01, activation="fused_lrelu"))
            self.conv_up = ModulatedConv2d(6, 8, 3, 16, upsample=True)
            self.act_up = op.FusedLeakyReLU(8)
            self.conv = ModulatedConv2d(8, 8, 3, 16)
            self.act = op.FusedLeakyReLU(8)
            self.conv_down = ModulatedConv2d(8, 4, 3, 16, downsample=True)
            self.to_rgb = ModulatedConv2d(4, 3, 1, 16, demodulate=False)
            self.up = Upsample((1, 3, 3, 1))
            self.down = Downsample((1, 3, 3, 1))

        def forward(self, x, z):
            w = self.mapping(z)
            h = self.act_up(self.conv_up(x, w))
            h = self.act(self.conv(h, w))
            h = self.conv_down(h, w)
            return self.to_rgb(h, w) + self.down(self.up(x[:, :3]))

    return Net()


def _pair():
    torch.manual_seed(0)
    ours = build(compat)
    theirs = build(_fallback_ops())
    theirs.load_state_dict(ours.state_dict())
    for m in (ours, theirs):  # non-zero activation biases
        for name, p in m.named_parameters():
            if name.startswith("act"):
                with torch.no_grad():
                    p.copy_(torch.linspace(-0.5, 0.5, p.numel()))
    return ours, theirs


def test_identical_outputs_and_gradients():
    ours, theirs = _pair()
    x, z = torch.randn(2, 6, 8, 8), torch.randn(2, 16)
    out_ours, out_theirs = ours(x, z), theirs(x, z)
    assert out_ours.shape == (2, 3, 8, 8)
    torch.testing.assert_close(out_ours, out_theirs, atol=1e-6, rtol=1e-5)
    g = torch.randn_like(out_ours)
    out_ours.backward(g)
    out_theirs.backward(g)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_r1_penalty_gradients():
    # R1: |d D(x) / d x|^2, differentiated w.r.t. the parameters (double backward).
    ours, theirs = _pair()
    x, z = torch.randn(2, 6, 8, 8), torch.randn(2, 16)
    grads = []
    for m in (ours, theirs):
        xr = x.clone().requires_grad_()
        (gx,) = torch.autograd.grad(m(xr, z).square().sum(), xr, create_graph=True)
        grads.append(torch.autograd.grad(gx.square().sum(), list(m.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_drop_in_as_op_package():
    sys.modules["op"] = compat
    try:
        from op import FusedLeakyReLU, conv2d_gradfix, fused_leaky_relu, upfirdn2d  # noqa: F401
        with conv2d_gradfix.no_weight_gradients():
            assert conv2d_gradfix.weight_gradients_disabled
        assert not conv2d_gradfix.weight_gradients_disabled
    finally:
        del sys.modules["op"]


def test_fused_leaky_relu_accepts_other_bias_dtype():
    x, b = torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.randn(3)
    torch.testing.assert_close(compat.fused_leaky_relu(x, b),
                               ref.fused_bias_leaky_relu(x, b.double()))
    with pytest.raises(ValueError, match="bias must have shape"):
        compat.fused_leaky_relu(x, torch.randn(4))
