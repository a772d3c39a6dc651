"""MobileStyleGAN's modulated depthwise-separable convolution as an op
(bes-dev/MobileStyleGAN.pytorch, core/models/modules/modulated_conv2d.py,
ModulatedDWConv2d).

hrops::modulated_dwconv2d: y = demod * conv1x1(conv_dw(modulation * x)), one
fused kernel, optionally with StyledConv2d's epilogue
leaky_relu(y + noise_weight * noise + bias) applied while each output tile is
in cache. Backward recomputes the depthwise output instead of saving it:
only x, the modulation and the weights are saved (and the output, when the
activation is fused: its sign gives the activation's gradient). Double
backward is not supported (raises).
"""
import torch

from .. import _backends, ref
from ._checks import (check_integer, check_real, check_same_device_dtype, check_tensor,
                      check_vector)
from ._define import call_ref, kernel_op, no_double_backward

_DWCONV_IMPLS = ("ref", "cpu", "triton")

def _dwconv_fake(x, modulation, weight_dw, weight_pw, demod, padding, bias, noise, noise_weight,
                 negative_slope, impl):
    k = weight_dw.shape[-1]
    return x.new_empty((x.shape[0], weight_pw.shape[0], x.shape[2] + 2 * padding - k + 1,
                        x.shape[3] + 2 * padding - k + 1))


def _dwconv_backward_fake(grad, x, modulation, weight_dw, weight_pw, demod, padding, impl):
    g_demod = torch.empty_like(demod) if demod is not None else x.new_empty(0)
    return (*(torch.empty_like(t, memory_format=torch.contiguous_format)
              for t in (x, modulation, weight_dw, weight_pw)), g_demod)


def _dwconv_setup(ctx, inputs, output):
    (x, modulation, weight_dw, weight_pw, demod, padding, bias, noise, noise_weight,
     negative_slope, impl) = inputs
    activated = output if negative_slope is not None else None
    ctx.save_for_backward(x, modulation, weight_dw, weight_pw, demod, noise, noise_weight,
                          activated)
    ctx.padding, ctx.negative_slope, ctx.impl = padding, negative_slope, impl
    ctx.has_bias = bias is not None


def _dwconv_backward(ctx, grad):
    x, modulation, weight_dw, weight_pw, demod, noise, noise_weight, activated = ctx.saved_tensors
    if activated is not None:  # LeakyReLU keeps the sign: its gradient from the output
        grad = torch.where(activated > 0, grad, grad * ctx.negative_slope)
    g_bias = grad.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[6] else None
    g_noise = g_noise_weight = None
    if noise is not None:
        if ctx.needs_input_grad[8]:
            g_noise_weight = (grad * noise).sum().reshape(noise_weight.shape)
        if ctx.needs_input_grad[7]:
            g_noise = (grad.sum(1, keepdim=True) * noise_weight).sum_to_size(noise.shape)
    g_x, g_mod, g_wdw, g_wpw, g_demod = _modulated_dwconv2d_backward(
        grad, x, modulation, weight_dw, weight_pw, demod, ctx.padding, ctx.impl)
    if g_bias is not None:
        g_bias = g_bias.to(grad.dtype)
    return (g_x, g_mod, g_wdw, g_wpw, (g_demod if demod is not None else None), None,
            g_bias, g_noise, g_noise_weight, None, None)


_modulated_dwconv2d = kernel_op("modulated_dwconv2d", fake=_dwconv_fake,
                                backward=_dwconv_backward, setup=_dwconv_setup,
                                triton="hrops.triton.modulated_dwconv", autocast="lower_precision")
_modulated_dwconv2d_backward = kernel_op("_modulated_dwconv2d_backward",
                                         fake=_dwconv_backward_fake,
                                         backward=no_double_backward("modulated_dwconv2d"),
                                         triton="hrops.triton.modulated_dwconv_backward",
                                         autocast=None)


def _ref_styled_dwconv(x, modulation, weight_dw, weight_pw, demod, padding, bias, noise,
                       noise_weight, negative_slope):
    y = ref.modulated_dwconv2d(x, modulation, weight_dw, weight_pw, demod, padding)
    return ref.styled_epilogue(y, bias, noise, noise_weight, negative_slope)


def _check_dwconv_args(x, modulation, weight_dw, weight_pw, demod, padding):
    """The padding as an int (k // 2 for None) once the tensors are checked."""
    check_tensor(x, "x", 4, "(N, Cin, H, W)")
    check_tensor(modulation, "modulation", 2, "(N, Cin)")
    check_tensor(weight_dw, "weight_dw", 4, "(Cin, 1, k, k)")
    check_tensor(weight_pw, "weight_pw", 4, "(Cout, Cin, 1, 1)")
    k = weight_dw.shape[-1]
    padding = k // 2 if padding is None else check_integer(padding, "padding", ge=0)
    n, cin = x.shape[:2]
    for name, t in (("modulation", modulation), ("weight_dw", weight_dw), ("weight_pw", weight_pw)):
        check_same_device_dtype(x, "x", t, name)
    if tuple(modulation.shape) != (n, cin):
        raise ValueError(f"modulation must have shape (N, Cin) = {(n, cin)}, got "
                         f"{tuple(modulation.shape)}")
    if weight_dw.shape[0] != cin or weight_dw.shape[1] != 1 or weight_dw.shape[2] != k or k % 2 == 0:
        raise ValueError(f"weight_dw must have shape (Cin, 1, k, k) with Cin = {cin} and odd k, "
                         f"got {tuple(weight_dw.shape)}")
    if weight_pw.shape[1] != cin or weight_pw.shape[2:] != (1, 1):
        raise ValueError(f"weight_pw must have shape (Cout, Cin, 1, 1) with Cin = {cin}, got "
                         f"{tuple(weight_pw.shape)}")
    if demod is not None:
        check_vector(demod, "demod", weight_pw.shape[0], "Cout", x, "x")
    if x.shape[2] + 2 * padding < k or x.shape[3] + 2 * padding < k:
        raise ValueError(f"padding {padding} with kernel {k} does not fit input of spatial size "
                         f"{tuple(x.shape[2:])}")
    return padding


def _check_epilogue_args(x, cout, out_hw, bias, noise, noise_weight):
    if bias is not None:
        check_tensor(bias, "bias")
        check_same_device_dtype(x, "x", bias, "bias")
        if bias.numel() != cout:
            raise ValueError(f"bias must have Cout = {cout} elements, got shape {tuple(bias.shape)}")
    if noise is None:
        if noise_weight is not None:
            raise ValueError("noise_weight needs noise")
        return None
    check_tensor(noise, "noise")
    check_same_device_dtype(x, "x", noise, "noise")
    if noise.dim() == 3:  # (1, Ho, Wo), as MobileStyleGAN indexes its noise list
        noise = noise.unsqueeze(0)
    if noise.dim() != 4 or noise.shape[0] not in (1, x.shape[0]) or noise.shape[1] != 1 or \
            tuple(noise.shape[2:]) != out_hw:
        raise ValueError(f"noise must have shape (1 or N, 1, Ho, Wo) = (1 or {x.shape[0]}, 1, "
                         f"{out_hw[0]}, {out_hw[1]}), got {tuple(noise.shape)}")
    if not isinstance(noise_weight, torch.Tensor) or noise_weight.numel() != 1:
        raise ValueError("noise needs noise_weight, a one-element tensor")
    check_same_device_dtype(x, "x", noise_weight, "noise_weight")
    return noise


def modulated_dwconv2d(x, modulation, weight_dw, weight_pw, demod=None, padding=None, *,
                       bias=None, noise=None, noise_weight=None, negative_slope=None, impl=None):
    """MobileStyleGAN's modulated depthwise-separable convolution, fused.

    x (N, Cin, H, W); modulation (N, Cin) multiplies the input channels (the
    layer passes scale * Linear(style)); weight_dw (Cin, 1, k, k) depthwise,
    k odd, zero padding (default k // 2); weight_pw (Cout, Cin, 1, 1) or
    (Cout, Cin) pointwise; demod (Cout,) optional output scale.
    Optional epilogue (StyledConv2d): + noise_weight * noise (noise (1 or N, 1,
    Ho, Wo) and noise_weight, a one-element tensor, given together) + bias
    (Cout elements), then LeakyReLU(negative_slope >= 0) if negative_slope is
    given.
    Returns (N, Cout, H + 2p - k + 1, W + 2p - k + 1).
    """
    if isinstance(weight_pw, torch.Tensor) and weight_pw.dim() == 2:
        weight_pw = weight_pw[:, :, None, None]
    padding = _check_dwconv_args(x, modulation, weight_dw, weight_pw, demod, padding)
    k = weight_dw.shape[-1]
    out_hw = (x.shape[2] + 2 * padding - k + 1, x.shape[3] + 2 * padding - k + 1)
    noise = _check_epilogue_args(x, weight_pw.shape[0], out_hw, bias, noise, noise_weight)
    if negative_slope is not None:  # >= 0: the backward reads the slope off the output's sign
        negative_slope = check_real(negative_slope, "negative_slope", ge=0)
    impl = _backends.resolve("modulated_dwconv2d", impl, x.device, _DWCONV_IMPLS)
    if impl == "ref":
        return call_ref("modulated_dwconv2d", _ref_styled_dwconv, x, modulation, weight_dw,
                        weight_pw, demod, padding, bias, noise, noise_weight, negative_slope)
    bias = bias.reshape(-1) if bias is not None else None
    return _modulated_dwconv2d(x, modulation, weight_dw, weight_pw, demod, padding, bias, noise,
                               noise_weight, negative_slope, impl)
