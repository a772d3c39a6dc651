"""MobileStyleGAN's modulated convolutions as custom ops (SEEDS.md 2.2, 2.4).

hrops::modulated_dwconv2d: y = demod * conv1x1(conv_dw(modulation * x)), one
fused kernel, optionally with StyledConv2d's epilogue
leaky_relu(y + noise_weight * noise + bias) applied while each output tile is
in cache. Backward recomputes the depthwise output instead of saving it:
only x, the modulation and the weights are saved (and the output, when the
activation is fused: its sign gives the activation's gradient). Double
backward is not supported (raises).

hrops::modulated_idwt_upsample: y = haar_idwt(modulation * x) in one pass.
"""
import importlib

import torch

from .. import _backends, ref
from ._checks import check_integer, check_same_device_dtype, check_tensor

_DWCONV_IMPLS = ("ref", "cpu", "triton")

# --- modulated depthwise-separable conv ---------------------------------------------------


@torch.library.custom_op("hrops::modulated_dwconv2d", mutates_args=())
def _modulated_dwconv2d(x: torch.Tensor, modulation: torch.Tensor, weight_dw: torch.Tensor,
                        weight_pw: torch.Tensor, demod: torch.Tensor | None, padding: int,
                        bias: torch.Tensor | None, noise: torch.Tensor | None,
                        noise_weight: torch.Tensor | None, negative_slope: float | None,
                        impl: str) -> torch.Tensor:
    if impl == "triton":
        kernels = importlib.import_module("hrops.triton.modulated_dwconv")
        return kernels.modulated_dwconv2d(x, modulation, weight_dw, weight_pw, demod, padding,
                                          bias, noise, noise_weight, negative_slope)
    return torch.ops.hrops_C.modulated_dwconv2d(x, modulation, weight_dw, weight_pw, demod, padding,
                                                bias, noise, noise_weight, negative_slope)


@_modulated_dwconv2d.register_fake
def _(x, modulation, weight_dw, weight_pw, demod, padding, bias, noise, noise_weight,
      negative_slope, impl):
    k = weight_dw.shape[-1]
    return x.new_empty((x.shape[0], weight_pw.shape[0], x.shape[2] + 2 * padding - k + 1,
                        x.shape[3] + 2 * padding - k + 1))


@torch.library.custom_op("hrops::_modulated_dwconv2d_backward", mutates_args=())
def _modulated_dwconv2d_backward(
        grad: torch.Tensor, x: torch.Tensor, modulation: torch.Tensor, weight_dw: torch.Tensor,
        weight_pw: torch.Tensor, demod: torch.Tensor | None, padding: int, impl: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if impl == "triton":
        kernels = importlib.import_module("hrops.triton.modulated_dwconv_backward")
        grads = kernels.modulated_dwconv2d_backward(grad, x, modulation, weight_dw, weight_pw,
                                                    demod, padding)
    else:
        grads = torch.ops.hrops_C.modulated_dwconv2d_backward(
            grad, x, modulation, weight_dw, weight_pw, demod, padding)
    g_x, g_mod, g_wdw, g_wpw, g_demod = grads
    return g_x, g_mod, g_wdw, g_wpw, (g_demod if g_demod is not None else x.new_empty(0))


@_modulated_dwconv2d_backward.register_fake
def _(grad, x, modulation, weight_dw, weight_pw, demod, padding, impl):
    g_demod = torch.empty_like(demod) if demod is not None else x.new_empty(0)
    return (torch.empty_like(x), torch.empty_like(modulation), torch.empty_like(weight_dw),
            torch.empty_like(weight_pw), g_demod)


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


def _no_double_backward(ctx, *grads):
    raise RuntimeError("hrops.modulated_dwconv2d does not support double backward; use "
                       "impl='ref' where second derivatives are needed")


_modulated_dwconv2d.register_autograd(_dwconv_backward, setup_context=_dwconv_setup)
_modulated_dwconv2d_backward.register_autograd(_no_double_backward,
                                               setup_context=lambda ctx, inputs, output: None)


def _check_dwconv_args(x, modulation, weight_dw, weight_pw, demod, padding):
    check_tensor(x, "x", 4, "(N, Cin, H, W)")
    check_tensor(modulation, "modulation", 2, "(N, Cin)")
    check_tensor(weight_dw, "weight_dw", 4, "(Cin, 1, k, k)")
    check_tensor(weight_pw, "weight_pw", 4, "(Cout, Cin, 1, 1)")
    n, cin = x.shape[:2]
    for name, t in (("modulation", modulation), ("weight_dw", weight_dw), ("weight_pw", weight_pw)):
        check_same_device_dtype(x, "x", t, name)
    if tuple(modulation.shape) != (n, cin):
        raise ValueError(f"modulation must have shape (N, Cin) = {(n, cin)}, got "
                         f"{tuple(modulation.shape)}")
    k = weight_dw.shape[-1]
    if weight_dw.shape[0] != cin or weight_dw.shape[1] != 1 or weight_dw.shape[2] != k or k % 2 == 0:
        raise ValueError(f"weight_dw must have shape (Cin, 1, k, k) with Cin = {cin} and odd k, "
                         f"got {tuple(weight_dw.shape)}")
    if weight_pw.shape[1] != cin or weight_pw.shape[2:] != (1, 1):
        raise ValueError(f"weight_pw must have shape (Cout, Cin, 1, 1) with Cin = {cin}, got "
                         f"{tuple(weight_pw.shape)}")
    if demod is not None:
        check_tensor(demod, "demod", 1, "(Cout,)")
        check_same_device_dtype(x, "x", demod, "demod")
        if demod.shape[0] != weight_pw.shape[0]:
            raise ValueError(f"demod must have shape (Cout,) = ({weight_pw.shape[0]},), got "
                             f"{tuple(demod.shape)}")
    if padding < 0 or x.shape[2] + 2 * padding < k or x.shape[3] + 2 * padding < k:
        raise ValueError(f"padding {padding} with kernel {k} does not fit input of spatial size "
                         f"{tuple(x.shape[2:])}")


def _check_epilogue_args(x, cout, out_hw, bias, noise, noise_weight):
    if bias is not None:
        check_tensor(bias, "bias")
        check_same_device_dtype(x, "x", bias, "bias")
        if bias.numel() != cout:
            raise ValueError(f"bias must have Cout = {cout} elements, got shape {tuple(bias.shape)}")
    if noise is None:
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
    Ho, Wo), noise_weight a one-element tensor) + bias (Cout elements), then
    LeakyReLU(negative_slope) if negative_slope is given.
    Returns (N, Cout, H + 2p - k + 1, W + 2p - k + 1).
    """
    if isinstance(weight_pw, torch.Tensor) and weight_pw.dim() == 2:
        weight_pw = weight_pw[:, :, None, None]
    padding = weight_dw.shape[-1] // 2 if padding is None else check_integer(padding, "padding")
    _check_dwconv_args(x, modulation, weight_dw, weight_pw, demod, padding)
    k = weight_dw.shape[-1]
    out_hw = (x.shape[2] + 2 * padding - k + 1, x.shape[3] + 2 * padding - k + 1)
    noise = _check_epilogue_args(x, weight_pw.shape[0], out_hw, bias, noise, noise_weight)
    if noise is None:
        noise_weight = None
    impl = _backends.resolve("modulated_dwconv2d", impl, x.device, _DWCONV_IMPLS)
    if impl == "ref":
        y = ref.modulated_dwconv2d(x, modulation, weight_dw, weight_pw, demod, padding)
        return ref.styled_epilogue(y, bias, noise, noise_weight, negative_slope)
    bias = bias.reshape(-1) if bias is not None else None
    negative_slope = float(negative_slope) if negative_slope is not None else None
    return _modulated_dwconv2d(x, modulation, weight_dw, weight_pw, demod, padding, bias, noise,
                               noise_weight, negative_slope, impl)


# --- modulated IDWT upsampling ------------------------------------------------------------


@torch.library.custom_op("hrops::modulated_idwt_upsample", mutates_args=())
def _modulated_idwt_upsample(x: torch.Tensor, modulation: torch.Tensor, impl: str) -> torch.Tensor:
    return torch.ops.hrops_C.modulated_idwt_upsample(x, modulation)


@_modulated_idwt_upsample.register_fake
def _(x, modulation, impl):
    return x.new_empty((x.shape[0], x.shape[1] // 4, 2 * x.shape[2], 2 * x.shape[3]))


@torch.library.custom_op("hrops::_modulated_idwt_upsample_backward", mutates_args=())
def _modulated_idwt_upsample_backward(grad: torch.Tensor, x: torch.Tensor, modulation: torch.Tensor,
                                      impl: str) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.ops.hrops_C.modulated_idwt_upsample_backward(grad, x, modulation)


@_modulated_idwt_upsample_backward.register_fake
def _(grad, x, modulation, impl):
    return torch.empty_like(x), torch.empty_like(modulation)


def _idwt_up_setup(ctx, inputs, output):
    x, modulation, impl = inputs
    ctx.save_for_backward(x, modulation)
    ctx.impl = impl


def _idwt_up_backward(ctx, grad):
    x, modulation = ctx.saved_tensors
    g_x, g_mod = _modulated_idwt_upsample_backward(grad, x, modulation, ctx.impl)
    return g_x, g_mod, None


def _idwt_up_double_backward(ctx, grad_gx, grad_gmod):
    raise RuntimeError("hrops.modulated_idwt_upsample does not support double backward; use "
                       "impl='ref' where second derivatives are needed")


_modulated_idwt_upsample.register_autograd(_idwt_up_backward, setup_context=_idwt_up_setup)
_modulated_idwt_upsample_backward.register_autograd(
    _idwt_up_double_backward, setup_context=lambda ctx, inputs, output: None)


def modulated_idwt_upsample(x, modulation, *, impl=None):
    """MobileStyleGAN's IDWT upsampling: Haar IDWT of modulation * x in one pass.

    x (N, 4C, h, w) packed [LL | LH, HL, HH per channel]; modulation (N, 4C)
    (the layer passes Linear(style), no scale). Returns (N, C, 2h, 2w).
    """
    check_tensor(x, "x", 4, "(N, 4C, h, w)")
    check_tensor(modulation, "modulation", 2, "(N, 4C)")
    check_same_device_dtype(x, "x", modulation, "modulation")
    if x.shape[1] % 4:
        raise ValueError(f"x must have 4C channels (packed LL | LH, HL, HH), got {x.shape[1]}")
    if tuple(modulation.shape) != tuple(x.shape[:2]):
        raise ValueError(f"modulation must have shape (N, 4C) = {tuple(x.shape[:2])}, got "
                         f"{tuple(modulation.shape)}")
    impl = _backends.resolve("modulated_idwt_upsample", impl, x.device, ("ref", "cpu", "cuda"))
    if impl == "ref":
        return ref.modulated_idwt_upsample(x, modulation)
    return _modulated_idwt_upsample(x, modulation, impl)
