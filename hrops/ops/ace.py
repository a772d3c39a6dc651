"""SEAN's ACE epilogue (ZPdesu/SEAN, models/networks/normalization.py,
ACE.forward: the final gamma/beta blend and modulation) as one fused op.

hrops::ace_modulate(x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha):
    gamma = a_g * gamma_avg + (1 - a_g) * gamma_spade
    beta  = a_b * beta_avg  + (1 - a_b) * beta_spade
    out   = x * (1 + gamma) + beta,          alpha = (a_g, a_b)
or, without the region branch (gamma_avg = beta_avg = alpha = None),
    out = x * (1 + gamma_spade) + beta_spade.
One pass over the maps instead of eager PyTorch's seven (three). The
backward is written with PyTorch ops (so double backward works).
"""
import torch

from .. import _backends, ref
from ._checks import check_same_device_dtype, check_tensor
from ._define import call_ref, kernel_op

_IMPLS = ("ref", "cpu", "cuda")


def _fake(x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha, impl):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _setup(ctx, inputs, output):
    x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha, _ = inputs
    ctx.blend = gamma_avg is not None
    ctx.save_for_backward(x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha)


def _backward(ctx, grad):
    x, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha = ctx.saved_tensors
    if not ctx.blend:
        return grad * (1 + gamma_spade), grad * x, grad, None, None, None, None
    a_g, a_b = alpha[0], alpha[1]
    gamma = a_g * gamma_avg + (1 - a_g) * gamma_spade
    grad_gamma = grad * x
    grad_alpha = torch.stack(((grad_gamma * (gamma_avg - gamma_spade)).sum(),
                              (grad * (beta_avg - beta_spade)).sum())).to(alpha.dtype)
    return (grad * (1 + gamma), (1 - a_g) * grad_gamma, (1 - a_b) * grad, a_g * grad_gamma,
            a_b * grad, grad_alpha, None)


_ace_modulate = kernel_op("ace_modulate", fake=_fake, backward=_backward, setup=_setup,
                          autocast="lower_precision")


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
