"""MobileStyleGAN's generator layers on hrops ops (MobileStyleGAN, Belousov 2021;
bes-dev/MobileStyleGAN.pytorch, core/models/modules/).

Same constructor arguments, parameter and buffer names and shapes as
MobileStyleGAN's modules (core/models/modules/*.py), so their state_dicts
load unchanged and the outputs match for the same inputs and noise:

  ModulatedConv2d     weight (Cout, Cin, k, k), modulation (Linear), style_inv
  ModulatedDWConv2d   weight_dw (Cin, 1, k, k), weight_permute (Cout, Cin, 1, 1),
                      modulation, style_inv
  IDWTUpsample        modulation, idwt.{g0_col, g1_col, g0_row, g1_row}
  NoiseInjection      weight (1,)
  StyledConv2d        conv.*, noise.weight, bias (1, Cout, 1, 1)
  MultichannelImage   conv.*, bias (1, Cout, 1, 1)
  ConstantInput       input (1, C, size, size)

Modulation multiplies the input activations by scale * Linear(style) (the
Linear is a plain nn.Linear with bias 1). Demodulation depends only on the
weights and the constant `style_inv` buffer, so for inference it can be
folded into the weights once: `fuse_demodulation()`.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops._checks import check_bool, check_same_device_dtype, check_tensor
from ..ops.modulated_dwconv import modulated_dwconv2d
from ..ops.modulated_idwt import modulated_idwt_upsample
from ._checks import check_counts
from .wavelets import DWTInverse


def _modulation(style_dim, channels):
    linear = nn.Linear(style_dim, channels, bias=True)
    linear.bias.data.fill_(1.0)
    return linear


def _check_x_style(x, style, modulation):
    """x (N, Cin, H, W) and style (N, style_dim), for the layer whose
    modulation maps style_dim -> Cin; the errors name them as the caller
    passed them (the ops would blame their own internal arguments)."""
    cin, style_dim = modulation.out_features, modulation.in_features
    check_tensor(x, "x", 4, f"(N, {cin}, H, W)")
    check_tensor(style, "style", 2, f"(N, {style_dim})")
    check_same_device_dtype(x, "x", style, "style")
    check_same_device_dtype(x, "x", modulation.weight, "the layer's parameters")
    if x.shape[1] != cin:
        raise ValueError(f"x must have shape (N, {cin}, H, W), got {tuple(x.shape)}")
    if tuple(style.shape) != (x.shape[0], style_dim):
        raise ValueError(f"style must have shape (N, style_dim) = {(x.shape[0], style_dim)}, "
                         f"got {tuple(style.shape)}")


class _Demodulated(nn.Module):
    """Shared demodulation handling: the factor, and folding it into the
    weight named `_fold_target` for inference."""
    _fold_target = ""

    def _init_demodulation(self, channels_in, kernel_size, demodulate):
        self.demodulate = check_bool(demodulate, "demodulate")
        if demodulate:
            self.register_buffer("style_inv", torch.randn(1, 1, channels_in, 1, 1))
        self.scale = 1.0 / math.sqrt(channels_in * kernel_size ** 2)
        self.padding = kernel_size // 2
        self._unfused = None  # the original weight while demodulation is folded in

    def _effective_weight(self):
        raise NotImplementedError

    def demodulation(self):
        """d[o] = rsqrt(sum_{i,kh,kw} (scale * style_inv[i] * W_eff[o,i,kh,kw])^2 + 1e-8)."""
        w = self._effective_weight().unsqueeze(0)
        return torch.rsqrt((self.scale * self.style_inv * w).pow(2).sum([2, 3, 4]) + 1e-8)[0]

    @property
    def demodulation_fused(self):
        return self._unfused is not None

    @torch.no_grad()
    def fuse_demodulation(self):
        """Folds the (style-independent) demodulation into the weights, for
        inference. Undone by train() or unfuse_demodulation(); state_dict()
        keeps saving the original weights."""
        if self.training:
            raise RuntimeError(f"{type(self).__name__}.fuse_demodulation() is for inference: "
                               "call .eval() first (training updates the unfused weights)")
        if not self.demodulate or self.demodulation_fused:
            return self
        weight = getattr(self, self._fold_target)
        self._unfused = weight.detach().clone()
        d = self.demodulation()
        weight.mul_(d.view(-1, *([1] * (weight.dim() - 1))))
        return self

    @torch.no_grad()
    def unfuse_demodulation(self):
        if self.demodulation_fused:
            getattr(self, self._fold_target).copy_(self._unfused)
            self._unfused = None
        return self

    def train(self, mode=True):
        if mode:
            self.unfuse_demodulation()
        return super().train(mode)

    def _apply(self, fn, recurse=True):
        # .to(), .half(), .cuda() reach the kept original weight too, so that
        # state_dict() and unfuse_demodulation() see the module's dtype and device.
        super()._apply(fn, recurse)
        if self._unfused is not None:
            self._unfused = fn(self._unfused)
        return self

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.demodulation_fused:
            destination[prefix + self._fold_target] = self._unfused.clone()

    def _load_from_state_dict(self, *args, **kwargs):
        self._unfused = None  # loaded weights are unfused
        super()._load_from_state_dict(*args, **kwargs)

    def _demod_or_none(self):
        return self.demodulation() if self.demodulate and not self.demodulation_fused else None


def fuse_demodulation(model):
    """Calls fuse_demodulation() on every hrops modulated layer in `model`
    (which must be in eval mode) and returns `model`."""
    for module in model.modules():
        if isinstance(module, _Demodulated):
            module.fuse_demodulation()
    return model


class ModulatedConv2d(_Demodulated):
    """Dense modulated conv (MobileStyleGAN's stem and to_img heads).

    Built on ATen: for 1x1 kernels (the to_img heads) the modulation and
    demodulation are folded into a per-sample weight and applied with one
    batched matmul, which avoids writing modulation * x: measured 3.1-3.5x
    faster than scale-then-conv2d on CPU (1 thread; 64 -> 12 channels at 512^2:
    12.0 vs 41.7 ms at batch 1). k x k kernels (the 4x4 stem) use conv2d."""
    _fold_target = "weight"

    def __init__(self, channels_in, channels_out, style_dim, kernel_size, demodulate=True):
        super().__init__()
        check_counts(channels_in=channels_in, channels_out=channels_out, style_dim=style_dim,
                     kernel_size=kernel_size)
        self.weight = nn.Parameter(torch.randn(channels_out, channels_in, kernel_size, kernel_size))
        self.modulation = _modulation(style_dim, channels_in)
        self._init_demodulation(channels_in, kernel_size, demodulate)

    def _effective_weight(self):
        return self.weight

    def forward(self, x, style):
        _check_x_style(x, style, self.modulation)
        m = self.scale * self.modulation(style)
        d = self._demod_or_none()
        if self.weight.shape[-1] == 1:
            w = self.weight[:, :, 0, 0]
            if d is not None:
                w = w * d[:, None]
            per_sample = w.unsqueeze(0) * m.unsqueeze(1)  # (N, Cout, Cin)
            out = torch.bmm(per_sample, x.flatten(2))
            return out.view(x.shape[0], w.shape[0], *x.shape[2:])  # (-1 fails on 0 elements)
        if 0 in x.shape[2:]:  # ATen's conv2d cannot take an empty map
            raise ValueError(f"x must have H >= 1 and W >= 1 with a {self.weight.shape[-1]}x"
                             f"{self.weight.shape[-1]} kernel, got {tuple(x.shape)}")
        out = F.conv2d(x * m[:, :, None, None], self.weight, padding=self.padding)
        return out if d is None else out * d.view(1, -1, 1, 1)


class ModulatedDWConv2d(_Demodulated):
    """Modulated depthwise-separable conv: one fused hrops.modulated_dwconv2d."""
    _fold_target = "weight_permute"

    def __init__(self, channels_in, channels_out, style_dim, kernel_size, demodulate=True, *,
                 impl=None):
        super().__init__()
        check_counts(channels_in=channels_in, channels_out=channels_out, style_dim=style_dim,
                     kernel_size=kernel_size)
        self.weight_dw = nn.Parameter(torch.randn(channels_in, 1, kernel_size, kernel_size))
        self.weight_permute = nn.Parameter(torch.randn(channels_out, channels_in, 1, 1))
        self.modulation = _modulation(style_dim, channels_in)
        self._init_demodulation(channels_in, kernel_size, demodulate)
        self.impl = impl

    def _effective_weight(self):
        return self.weight_dw.transpose(0, 1) * self.weight_permute  # (Cout, Cin, k, k)

    def demodulation(self):
        # The same value as the dense formula, without building (Cout, Cin, k, k):
        # sum_{i,kh,kw} (s * style_inv_i * Wdw[i,kh,kw] * Wpw[o,i])^2
        #   = s^2 sum_i style_inv_i^2 ||Wdw[i]||^2 Wpw[o,i]^2.
        dw_energy = self.weight_dw.pow(2).sum((1, 2, 3)) * self.style_inv.view(-1).pow(2)
        pw = self.weight_permute[:, :, 0, 0]
        return torch.rsqrt(self.scale ** 2 * (pw.pow(2) * dw_energy).sum(1) + 1e-8)

    def forward(self, x, style, **epilogue):
        """epilogue: bias, noise, noise_weight, negative_slope, fused into the
        kernel (see hrops.modulated_dwconv2d); StyledConv2d passes them."""
        _check_x_style(x, style, self.modulation)
        m = self.scale * self.modulation(style)
        return modulated_dwconv2d(x, m, self.weight_dw, self.weight_permute, self._demod_or_none(),
                                  self.padding, impl=self.impl, **epilogue)


class IDWTUpsample(nn.Module):
    """Modulation then Haar IDWT of the packed channels, (N, C, h, w) ->
    (N, C/4, 2h, 2w), in one hrops.modulated_idwt_upsample pass. (MobileStyleGAN
    spells it IDWTUpsaplme.)"""

    def __init__(self, channels_in, style_dim, *, impl=None):
        super().__init__()
        check_counts(channels_in=channels_in, style_dim=style_dim)
        self.channels = channels_in // 4
        if self.channels * 4 != channels_in:
            raise ValueError(f"channels_in must be a multiple of 4, got {channels_in}")
        self.idwt = DWTInverse(mode="zero", wave="db1")  # its buffers keep state_dict keys
        self.modulation = _modulation(style_dim, channels_in)
        self.impl = impl

    def forward(self, x, style):
        _check_x_style(x, style, self.modulation)
        return modulated_idwt_upsample(x, self.modulation(style), impl=self.impl)


class NoiseInjection(nn.Module):
    """image + weight * noise; noise (N or 1, 1, H, W) ~ N(0, 1) when not given."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image, noise=None):
        check_tensor(image, "image", 4, "(N, C, H, W)")
        if noise is None:
            batch, _, height, width = image.shape
            noise = image.new_empty(batch, 1, height, width).normal_()
        return image + self.weight * noise


class StyledConv2d(nn.Module):
    """conv -> noise -> + bias -> LeakyReLU(0.2) (no sqrt(2) gain). With a
    ModulatedDWConv2d the noise, bias and activation run inside its kernel
    (three passes over the activations fewer)."""

    def __init__(self, channels_in, channels_out, style_dim, kernel_size, demodulate=True,
                 conv_module=ModulatedConv2d):
        super().__init__()
        self.conv = conv_module(channels_in, channels_out, style_dim, kernel_size,
                                demodulate=demodulate)
        self.noise = NoiseInjection()
        self.bias = nn.Parameter(torch.zeros(1, channels_out, 1, 1))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, input, style, noise=None):
        if isinstance(self.conv, ModulatedDWConv2d) and type(self.act) is nn.LeakyReLU:
            if noise is None:
                noise = input.new_empty(input.shape[0], 1, *input.shape[2:]).normal_()
            return self.conv(input, style, bias=self.bias, noise=noise,
                             noise_weight=self.noise.weight,
                             negative_slope=self.act.negative_slope)
        out = self.noise(self.conv(input, style), noise=noise)
        return self.act(out + self.bias)


class MultichannelImage(nn.Module):
    """1x1 modulated conv without demodulation, plus bias: the 12-channel
    Haar-packed image head. (MobileStyleGAN spells it MultichannelIamge.)"""

    def __init__(self, channels_in, channels_out, style_dim, kernel_size=1):
        super().__init__()
        self.conv = ModulatedConv2d(channels_in, channels_out, style_dim, kernel_size,
                                    demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, channels_out, 1, 1))

    def forward(self, hidden, style):
        return self.conv(hidden, style) + self.bias


class ConstantInput(nn.Module):
    def __init__(self, channel, size=4):
        super().__init__()
        check_counts(channel=channel, size=size)
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, input):
        return self.input.repeat(input.shape[0], 1, 1, 1)
