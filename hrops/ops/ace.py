"""SEAN's ACE epilogue (ZPdesu/SEAN, models/networks/normalization.py,
ACE.forward: the final gamma/beta blend and modulation) as one fused op.

hrops::ace_modulate(x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha):
    gamma = a_g * gamma_avg + (1 - a_g) * gamma_spade
    beta  = a_b * beta_avg  + (1 - a_b) * beta_spade
    out   = x * (1 + gamma) + beta,          alpha = (a_g, a_b)
or, without the region branch (gamma_avg = beta_avg = alpha = None),
    out = x * (1 + gamma_spade) + beta_spade.
One pass over the maps instead of eager PyTorch's seven (three). The
backward is its own op, hrops::_ace_modulate_backward(grad, x, gamma_spade,
beta_spade, gamma_avg, beta_avg, alpha): one pass that writes the five map
gradients and sums alpha's (without the region branch: d x and
d gamma_spade; d beta_spade is grad). Its own backward is written with
PyTorch ops, so gradients of every order work.
"""
import torch

from .. import _backends, ref
from ._checks import check_same_device_dtype, check_tensor
from ._define import call_ref, kernel_op

_IMPLS = ("ref", "cpu", "cuda")


def _fake(x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha, impl):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _backward_fake(grad, x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha, impl):
    def maps(count):
        return [torch.empty_like(x, memory_format=torch.contiguous_format) for _ in range(count)]
    if gamma_avg is None:
        return (*maps(2), *(x.new_empty(0) for _ in range(4)))
    return (*maps(5), x.new_empty(2))


def _setup(ctx, inputs, output):
    x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha, ctx.impl = inputs
    ctx.blend = gamma_avg is not None
    ctx.save_for_backward(x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha)


def _backward(ctx, grad):
    x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha = ctx.saved_tensors
    grads = _ace_modulate_backward(grad, x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha,
                                   ctx.impl)
    if not ctx.blend:
        return grads[0], grads[1], grad, None, None, None, None
    return (*grads, None)


def _backward_setup(ctx, inputs, output):
    *saved, ctx.impl = inputs
    ctx.blend = saved[4] is not None
    ctx.save_for_backward(*saved)


def _backward_grad(ctx, u_x, u_gs, u_bs, u_ga, u_ba, u_alpha):
    """Gradients of the backward op's outputs' loss, in PyTorch ops (so any
    order works): the backward is linear in grad and in each map."""
    g, x, gs, bs, ga, ba, alpha = ctx.saved_tensors
    if not ctx.blend:  # (g (1 + gs), g x)
        return u_x * (1 + gs) + u_gs * x, u_gs * g, u_x * g, None, None, None, None, None
    a_g, a_b = alpha[0], alpha[1]
    u_gx = (1 - a_g) * u_gs + a_g * u_ga + u_alpha[0] * (ga - gs)  # of the products g * x
    u_gb = (1 - a_b) * u_bs + a_b * u_ba + u_alpha[1] * (ba - bs)  # of g in the beta terms
    gamma = a_g * ga + (1 - a_g) * gs
    g_x = g * x
    d_alpha = torch.stack(((g * u_x * (ga - gs) + g_x * (u_ga - u_gs)).sum(),
                           (g * (u_ba - u_bs)).sum()))
    return (u_x * (1 + gamma) + u_gx * x + u_gb, u_gx * g,
            (1 - a_g) * u_x * g - u_alpha[0] * g_x, -u_alpha[1] * g,
            a_g * u_x * g + u_alpha[0] * g_x, u_alpha[1] * g, d_alpha, None)


_ace_modulate = kernel_op("ace_modulate", fake=_fake, backward=_backward, setup=_setup,
                          autocast="lower_precision")
_ace_modulate_backward = kernel_op("_ace_modulate_backward", fake=_backward_fake,
                                   backward=_backward_grad, setup=_backward_setup, autocast=None)


def ace_modulate(x, gamma_spade, beta_spade, gamma_avg=None, beta_avg=None, alpha=None, *,
                 impl=None):
    """SEAN's ACE epilogue in one pass (see the module doc). All maps have
    x's shape, dtype and device; alpha = (sigmoid(blending_gamma),
    sigmoid(blending_beta)), a 2-element tensor of x's dtype on x's device,
    with gamma_avg/beta_avg."""
    maps = {"x": x, "gamma_spade": gamma_spade, "beta_spade": beta_spade}
    blend = gamma_avg is not None
    if blend != (beta_avg is not None) or blend != (alpha is not None):
        raise ValueError("gamma_avg, beta_avg and alpha must be given together")
    if blend:
        maps.update(gamma_avg=gamma_avg, beta_avg=beta_avg)
    for name, t in maps.items():
        check_tensor(t, name)
        check_same_device_dtype(x, "x", t, name)
        if t.shape != x.shape:
            raise ValueError(f"{name} must have the shape of x {tuple(x.shape)}, got "
                             f"{tuple(t.shape)}")
    if blend:
        check_tensor(alpha, "alpha", 1, "(2,)")
        check_same_device_dtype(x, "x", alpha, "alpha")
        if alpha.numel() != 2:
            raise ValueError(f"alpha must have shape (2,), got {tuple(alpha.shape)}")
    impl = _backends.resolve("ace_modulate", impl, x.device, _IMPLS)
    if impl == "ref":
        return call_ref("ace_modulate", ref.ace_modulate, x, gamma_spade, beta_spade, gamma_avg,
                        beta_avg, alpha)
    return _ace_modulate(x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha, impl)
