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
from torch.fx.experimental.symbolic_shapes import guard_or_false

from .. import _backends, ref
from ._checks import check_real, check_tensor, check_vector
from ._define import call_ref, kernel_op

_IMPLS = ("ref", "cpu", "cuda")
# On CPU, "auto" runs the reference (three ATen ops) on tensors of at most
# this many elements, where the custom op's fixed cost per call exceeds the
# passes it saves. Measured on an Intel Xeon (AVX-512), 1 thread, kernel vs
# reference: forward 14.9 vs 14.3 us at 8192 elements, 16.4 vs 17.5 us at
# 16384; forward and backward 141 vs 136 us at 65536, 371 vs 523 us at
# 262144 (a custom op's autograd costs ~35 us more per call).
_AUTO_REF_MAX_NUMEL = {False: 8192, True: 65536}  # by whether a gradient is recorded


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
    the input's sign from the output's). Gradients of every order. With
    impl "auto", small CPU tensors (up to 8192 elements, 65536 when a
    gradient is recorded: a mapping network's (N, 512)) take the reference,
    which is faster there.
    """
    check_tensor(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (N, C, *), got shape {tuple(x.shape)}")
    if bias is not None:
        check_vector(bias, "bias", x.shape[1], "C", x, "x")
    negative_slope = check_real(negative_slope, "negative_slope", ge=0)
    scale = check_real(scale, "scale", gt=0)
    auto = (_backends.DEFAULT_IMPL if impl is None else impl) == "auto"
    impl = _backends.resolve("fused_bias_leaky_relu", impl, x.device, _IMPLS)
    if impl == "cpu" and auto:
        grad = torch.is_grad_enabled() and (x.requires_grad or
                                            (bias is not None and bias.requires_grad))
        if guard_or_false(x.numel() <= _AUTO_REF_MAX_NUMEL[grad]):
            impl = "ref"
    if impl == "ref":
        return call_ref("fused_bias_leaky_relu", ref.fused_bias_leaky_relu, x, bias,
                        negative_slope, scale)
    return _fused_bias_leaky_relu(x, bias, negative_slope, scale, impl)
