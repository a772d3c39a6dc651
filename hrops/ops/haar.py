"""Haar DWT/IDWT ops (MobileStyleGAN's packing; bes-dev/MobileStyleGAN.pytorch,
core/loss/distiller_loss.py, img_to_dwt / dwt_to_img, on
fbcotter/pytorch_wavelets, pytorch_wavelets/dwt/lowlevel.py).

Custom ops with autograd and fake (meta) implementations:
  hrops::haar_dwt(x, impl)                        -> packed (N, 4C, h, w)
  hrops::haar_idwt_packed(y, out_h, out_w, impl)  -> (N, C, out_h, out_w)
  hrops::haar_idwt(low, high, out_h, out_w, impl) -> the same from
      pytorch_wavelets' separate (low, high) layout
The packed IDWT is its own op so that its gradient is one packed tensor:
slicing y outside the op would make autograd zero-fill and add two
full-size gradients. The transform is orthonormal, so each op's backward is
the other op applied to the gradient (its adjoint): nothing is saved for
backward and double backward works. `impl` picks the kernel (see
hrops._backends).
"""
import torch

from .. import _backends, ref
from ._checks import check_integers, check_same_device_dtype, check_tensor
from ._define import call_ref, kernel_op


def _split_packed(y):
    """Packed (N, 4C, h, w) -> views low (N, C, h, w), high (N, C, 3, h, w)."""
    c = y.shape[1] // 4
    return y[:, :c], y[:, c:].unflatten(1, (c, 3))


def _dwt_fake(x, impl):
    n, c, height, width = x.shape
    return x.new_empty((n, 4 * c, (height + 1) // 2, (width + 1) // 2))


def _idwt_packed_fake(y, out_h, out_w, impl):
    return y.new_empty((y.shape[0], y.shape[1] // 4, out_h, out_w))


def _idwt_fake(low, high, out_h, out_w, impl):
    return low.new_empty((low.shape[0], low.shape[1], out_h, out_w))


def _dwt_setup(ctx, inputs, output):
    x, impl = inputs
    ctx.size = (x.shape[2], x.shape[3])
    ctx.impl = impl


def _dwt_backward(ctx, grad):
    return _haar_idwt_packed(grad, ctx.size[0], ctx.size[1], ctx.impl), None


def _idwt_setup(ctx, inputs, output):
    ctx.impl = inputs[-1]


def _idwt_packed_backward(ctx, grad):
    return _haar_dwt(grad, ctx.impl), None, None, None


def _idwt_backward(ctx, grad):
    grad_low, grad_high = _split_packed(_haar_dwt(grad, ctx.impl))
    return grad_low, grad_high, None, None, None


_TRITON = "hrops.triton.haar"
_haar_dwt = kernel_op("haar_dwt", fake=_dwt_fake, backward=_dwt_backward, setup=_dwt_setup,
                      triton=_TRITON, autocast="lower_precision")
_haar_idwt_packed = kernel_op("haar_idwt_packed", fake=_idwt_packed_fake,
                              backward=_idwt_packed_backward, setup=_idwt_setup, triton=_TRITON,
                              autocast="lower_precision")
_haar_idwt = kernel_op("haar_idwt", fake=_idwt_fake, backward=_idwt_backward, setup=_idwt_setup,
                       triton=_TRITON, autocast="lower_precision")


def haar_dwt(x: torch.Tensor, *, impl: str | None = None) -> torch.Tensor:
    """Single-level Haar DWT (pywt 'haar'/'db1', mode 'zero').

    x: (N, C, H, W). Returns (N, 4C, ceil(H/2), ceil(W/2)): channels [0, C) are
    LL, channel C + 3c + b holds band b (0 = LH, 1 = HL, 2 = HH) of input
    channel c. Odd H/W are zero-padded at the bottom/right.
    """
    check_tensor(x, "x", 4, "(N, C, H, W)")
    impl = _backends.resolve("haar_dwt", impl, x.device)
    if impl == "ref":
        return call_ref("haar_dwt", ref.haar_dwt, x)
    return _haar_dwt(x, impl)


def _output_size(output_size, h, w):
    if output_size is None:
        return 2 * h, 2 * w
    out_h, out_w = check_integers(output_size, "output_size", "a pair (H, W)", ge=0)
    if (out_h + 1) // 2 != h or (out_w + 1) // 2 != w:
        raise ValueError(f"output_size {(out_h, out_w)} does not fit coefficients of size "
                         f"({h}, {w}): expected (2h or 2h-1, 2w or 2w-1)")
    return out_h, out_w


def haar_idwt_bands(low: torch.Tensor, high: torch.Tensor, output_size=None, *,
                    impl: str | None = None) -> torch.Tensor:
    """Inverse of haar_dwt from pytorch_wavelets' layout: low (N, C, h, w),
    high (N, C, 3, h, w) with bands (LH, HL, HH). Returns (N, C, 2h, 2w), or
    `output_size` = (H, W) with H in {2h-1, 2h} to undo an odd-sized DWT."""
    check_tensor(low, "low", 4, "(N, C, h, w)")
    check_tensor(high, "high", 5, "(N, C, 3, h, w)")
    check_same_device_dtype(low, "low", high, "high")
    n, c, h, w = low.shape
    if tuple(high.shape) != (n, c, 3, h, w):
        raise ValueError(f"high must have shape (N, C, 3, h, w) = {(n, c, 3, h, w)} to match "
                         f"low, got {tuple(high.shape)}")
    out_h, out_w = _output_size(output_size, h, w)
    impl = _backends.resolve("haar_idwt", impl, low.device)
    if impl == "ref":
        return call_ref("haar_idwt", ref.haar_idwt, low, high, out_h, out_w)
    return _haar_idwt(low, high, out_h, out_w, impl)


def haar_idwt(y: torch.Tensor, output_size=None, *, impl: str | None = None) -> torch.Tensor:
    """Inverse of haar_dwt: packed (N, 4C, h, w) -> (N, C, 2h, 2w) (or
    `output_size`, see haar_idwt_bands)."""
    check_tensor(y, "y", 4, "(N, 4C, h, w)")
    if y.shape[1] % 4:
        raise ValueError(f"y must have 4C channels (packed LL | LH, HL, HH), got {y.shape[1]}")
    out_h, out_w = _output_size(output_size, y.shape[2], y.shape[3])
    impl = _backends.resolve("haar_idwt", impl, y.device)
    if impl == "ref":
        return call_ref("haar_idwt_packed", ref.haar_idwt, *_split_packed(y), out_h, out_w)
    return _haar_idwt_packed(y, out_h, out_w, impl)
