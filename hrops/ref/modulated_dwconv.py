"""MobileStyleGAN's modulated depthwise-separable convolution and its
StyledConv2d epilogue in plain PyTorch (bes-dev/MobileStyleGAN.pytorch,
core/models/modules/modulated_conv2d.py, ModulatedDWConv2d).

The modulation scales the input activations (not the weights); demodulation
is a per-output-channel factor that does not depend on the style.
"""
import torch
import torch.nn.functional as F

__all__ = ["modulated_dwconv2d", "styled_epilogue"]


def modulated_dwconv2d(x, modulation, weight_dw, weight_pw, demod=None, padding=1):
    """x (N, Cin, H, W), modulation (N, Cin), weight_dw (Cin, 1, k, k),
    weight_pw (Cout, Cin, 1, 1), demod (Cout,) or None."""
    y = x * modulation[:, :, None, None]
    if x.shape[1] > 0:
        y = F.conv2d(y, weight_dw, padding=padding, groups=x.shape[1])
    else:  # groups=0 is an error to ATen: no channels convolve to none
        y = y.new_zeros(*x.shape[:2], *[s + 2 * padding - weight_dw.shape[-1] + 1
                                         for s in x.shape[2:]])
    if y.shape[1] > 0 and weight_pw.shape[0] > 0:
        y = F.conv2d(y, weight_pw)
    else:  # ATen's 1x1 conv2d gives 0 channels for 0 inputs and rejects Cout = 0
        y = torch.einsum("nihw,oi->nohw", y, weight_pw[:, :, 0, 0])
    return y if demod is None else y * demod.view(1, -1, 1, 1)


def styled_epilogue(y, bias=None, noise=None, noise_weight=None, negative_slope=None):
    """StyledConv2d after its conv: y + noise_weight * noise + bias, then
    LeakyReLU(negative_slope) (no gain) if a slope is given."""
    if noise is not None:
        y = y + noise_weight.reshape(()) * noise
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y if negative_slope is None else F.leaky_relu(y, negative_slope)
