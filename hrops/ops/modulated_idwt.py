"""MobileStyleGAN's IDWT upsampling as an op (bes-dev/MobileStyleGAN.pytorch,
core/models/modules/idwt_upsample.py, IDWTUpsaplme).

hrops::modulated_idwt_upsample: y = haar_idwt(modulation * x) in one pass.
Its backward is its own op (saves the inputs only); double backward is not
supported (raises).
"""
import torch

from .. import _backends, ref
from ._checks import check_same_device_dtype, check_tensor
from ._define import call_ref, kernel_op, no_double_backward


def _idwt_up_fake(x, modulation, impl):
    return x.new_empty((x.shape[0], x.shape[1] // 4, 2 * x.shape[2], 2 * x.shape[3]))


def _idwt_up_backward_fake(grad, x, modulation, impl):
    return torch.empty_like(x, memory_format=torch.contiguous_format), torch.empty_like(modulation)


def _idwt_up_setup(ctx, inputs, output):
    x, modulation, impl = inputs
    ctx.save_for_backward(x, modulation)
    ctx.impl = impl


def _idwt_up_backward(ctx, grad):
    x, modulation = ctx.saved_tensors
    g_x, g_mod = _modulated_idwt_upsample_backward(grad, x, modulation, ctx.impl)
    return g_x, g_mod, None


_modulated_idwt_upsample = kernel_op("modulated_idwt_upsample", fake=_idwt_up_fake,
                                     backward=_idwt_up_backward, setup=_idwt_up_setup,
                                     autocast="lower_precision")
_modulated_idwt_upsample_backward = kernel_op(
    "_modulated_idwt_upsample_backward", fake=_idwt_up_backward_fake,
    backward=no_double_backward("modulated_idwt_upsample"), autocast=None)


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
        return call_ref("modulated_idwt_upsample", ref.modulated_idwt_upsample, x, modulation)
    return _modulated_idwt_upsample(x, modulation, impl)
