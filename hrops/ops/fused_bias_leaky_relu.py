"""StyleGAN2's fused bias + leaky ReLU as custom ops (rosinality/stylegan2-pytorch
op/fused_act.py, as copied in Yan98/S2FGAN op/fused_act.py).

hrops::fused_bias_leaky_relu(x, bias, slope, scale) = leaky_relu(x + bias) * scale
in one pass. Its backward saves only the output: with slope >= 0 and
scale > 0 the output's sign is the input's, so
  grad_x = grad * (out > 0 ? 1 : slope) * scale,  grad_bias = sum of grad_x.
The backward is its own op, hrops::_fused_bias_leaky_relu_backward(grad, out,
shift), computing (grad + shift) * (out > 0 ? 1 : slope) * scale and its sum
over all but dim 1. That op is linear in (grad, shift) with a mask that is
constant almost everywhere, so its own backward is the same op applied to
the incoming gradients (the shift carries the bias gradient's gradient), and
gradients of every order work (StyleGAN2-ADA's bias_act does the same).
"""
import torch

from .. import _backends, ref
from ._checks import check_tensor, check_vector
from ._define import call_ref, kernel_op

_IMPLS = ("ref", "cpu", "cuda")


def _layout_like_kernel(x):
    """An empty tensor in the layout the compiled kernels give their outputs."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last):
        return torch.empty_like(x, memory_format=torch.channels_last)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _fake(x, bias, negative_slope, scale, impl):
    return _layout_like_kernel(x)


def _backward_fake(grad, out, shift, negative_slope, scale, bias_grad, impl):
    return _layout_like_kernel(out), out.new_empty((out.shape[1],) if bias_grad else (0,))


def _setup(ctx, inputs, output):
    x, bias, ctx.slope, ctx.scale, ctx.impl = inputs
    ctx.has_bias = bias is not None
    ctx.save_for_backward(output)


def _grad(ctx, grad):
    (out,) = ctx.saved_tensors
    grad_x, grad_bias = _fused_bias_leaky_relu_backward(grad, out, None, ctx.slope, ctx.scale,
                                                        ctx.has_bias, ctx.impl)
    return grad_x, (grad_bias if ctx.has_bias else None), None, None, None


def _backward_setup(ctx, inputs, output):
    grad, out, shift, ctx.slope, ctx.scale, ctx.bias_grad, ctx.impl = inputs
    ctx.has_shift = shift is not None
    ctx.save_for_backward(out)


def _backward_grad(ctx, gg_x, gg_bias):
    (out,) = ctx.saved_tensors
    shift = gg_bias if ctx.bias_grad else None
    g_grad, g_shift = _fused_bias_leaky_relu_backward(gg_x, out, shift, ctx.slope, ctx.scale,
                                                      ctx.has_shift, ctx.impl)
    # The mask depends on `out` only through its sign: zero gradient for out.
    return g_grad, None, (g_shift if ctx.has_shift else None), None, None, None, None


_fused_bias_leaky_relu = kernel_op("fused_bias_leaky_relu", fake=_fake, backward=_grad,
                                   setup=_setup, autocast="lower_precision")
_fused_bias_leaky_relu_backward = kernel_op("_fused_bias_leaky_relu_backward",
                                            fake=_backward_fake, backward=_backward_grad,
                                            setup=_backward_setup, autocast=None)


def fused_bias_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None = None,
                          negative_slope: float = 0.2, scale: float = 2 ** 0.5, *,
                          impl: str | None = None) -> torch.Tensor:
    """leaky_relu(x + bias, negative_slope) * scale in one pass, bias along dim 1.

    x (N, C, *) (e.g. (N, C) linear outputs or (N, C, H, W) feature maps);
    bias (C,) or None. negative_slope >= 0 and scale > 0 (the backward reads
    the input's sign from the output's). Gradients of every order.
    """
    check_tensor(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (N, C, *), got shape {tuple(x.shape)}")
    if bias is not None:
        check_vector(bias, "bias", x.shape[1], "C", x, "x")
    if not (negative_slope >= 0 and scale > 0):
        raise ValueError(f"negative_slope must be >= 0 and scale > 0, got {negative_slope} "
                         f"and {scale}")
    impl = _backends.resolve("fused_bias_leaky_relu", impl, x.device, _IMPLS)
    if impl == "ref":
        return call_ref("fused_bias_leaky_relu", ref.fused_bias_leaky_relu, x, bias,
                        negative_slope, scale)
    return _fused_bias_leaky_relu(x, bias, float(negative_slope), float(scale), impl)
