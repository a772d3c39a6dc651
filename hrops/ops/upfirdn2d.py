"""upfirdn2d as a custom op (StyleGAN2; rosinality/stylegan2-pytorch
op/upfirdn2d.py, as copied in Yan98/S2FGAN op/upfirdn2d.py): upsample by zero
insertion, pad (negative pads crop), 2-D FIR filter (true convolution, i.e.
the kernel is flipped, as in rosinality's and NVIDIA's upfirdn2d), downsample,
in one pass.

The op is linear in x; its adjoint (the backward) is upfirdn2d again, with
the flipped kernel, up and down swapped, and pads chosen so the result has
x's size. The backward calls the op itself, so gradients of every order work.
The kernel gets no gradient (it is a fixed filter in every StyleGAN2 code base).
"""
import torch

from .. import _backends, ref
from ._checks import check_integers, check_tensor
from ._define import call_ref, kernel_op

_IMPLS = ("ref", "cpu", "cuda")


def _out_len(size, k, up, down, pad0, pad1):
    span = size * up + pad0 + pad1 - k
    return 0 if span < 0 else span // down + 1


def _fake(x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, impl):
    kh, kw = kernel.shape
    return x.new_empty((x.shape[0], x.shape[1],
                        _out_len(x.shape[2], kh, up_y, down_y, pad_y0, pad_y1),
                        _out_len(x.shape[3], kw, up_x, down_x, pad_x0, pad_x1)))


def _setup(ctx, inputs, output):
    x, kernel, *ctx.params, ctx.impl = inputs
    ctx.in_size = x.shape[2], x.shape[3]
    ctx.save_for_backward(kernel)


def _adjoint_pads(in_size, out_size, k, up, down, pad0):
    """Pads of the adjoint: upfirdn(grad, flip(kernel), up=down, down=up)
    restores the input length (positions that the forward's downsampling
    never read get zero gradient)."""
    return k - pad0 - 1, in_size * up - out_size * down + pad0 - up + 1


def _backward(ctx, grad):
    (kernel,) = ctx.saved_tensors
    up_x, up_y, down_x, down_y, pad_x0, _, pad_y0, _ = ctx.params
    kh, kw = kernel.shape
    gx0, gx1 = _adjoint_pads(ctx.in_size[1], grad.shape[3], kw, up_x, down_x, pad_x0)
    gy0, gy1 = _adjoint_pads(ctx.in_size[0], grad.shape[2], kh, up_y, down_y, pad_y0)
    grad_x = _upfirdn2d(grad, kernel.flip([0, 1]), down_x, down_y, up_x, up_y, gx0, gx1, gy0,
                        gy1, ctx.impl)
    return grad_x, None, None, None, None, None, None, None, None, None, None


_upfirdn2d = kernel_op("upfirdn2d", fake=_fake, backward=_backward, setup=_setup,
                       autocast="lower_precision")


# Factors and pads beyond any filter's use: the CPU kernel's row buffers
# grow with them (a pad or factor of 2**31 took minutes and gigabytes).
_LIMIT = 2 ** 20


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up=1, down=1, pad=(0, 0), *,
              impl: str | None = None) -> torch.Tensor:
    """Upsample (zero insertion), FIR-filter (convolution with `kernel`) and
    downsample, rosinality's signature.

    x (N, C, H, W); kernel (kh, kw); up, down: int or (x, y) in [1, 2**20];
    pad: (p0, p1) for both dimensions or (x0, x1, y0, y1), in [-2**20, 2**20],
    negative values crop. Returns
    (N, C, (H * up_y + y0 + y1 - kh) // down_y + 1, (likewise for W)).
    Gradients of every order for x; the kernel gets none. The kernels skip
    padding and inserted zeros rather than multiply them: a NaN or inf
    kernel tap that falls only on them leaves no NaN, where the reference
    has 0 * inf.
    """
    check_tensor(x, "x", 4, "(N, C, H, W)")
    check_tensor(kernel, "kernel", 2, "(kh, kw)")
    if kernel.device != x.device:
        raise ValueError(f"kernel and x must be on the same device, got {kernel.device} and "
                         f"{x.device}")
    if kernel.numel() == 0:
        raise ValueError("kernel must not be empty")
    kernel = kernel.detach()  # a fixed filter, whichever impl runs (rosinality's op too)
    up_x, up_y = check_integers(up, "up", "a pair (x, y)", scalar=True, ge=1, le=_LIMIT)
    down_x, down_y = check_integers(down, "down", "a pair (x, y)", scalar=True, ge=1, le=_LIMIT)
    pad = check_integers(pad, "pad", "(p0, p1) or (x0, x1, y0, y1)", lengths=(2, 4),
                         ge=-_LIMIT, le=_LIMIT)
    pad_x0, pad_x1, pad_y0, pad_y1 = pad * 2 if len(pad) == 2 else pad
    kh, kw = kernel.shape
    if (x.shape[2] * up_y + pad_y0 + pad_y1 < kh or x.shape[3] * up_x + pad_x0 + pad_x1 < kw):
        raise ValueError(f"the upsampled and padded input ({x.shape[2] * up_y + pad_y0 + pad_y1}, "
                         f"{x.shape[3] * up_x + pad_x0 + pad_x1}) is smaller than the kernel "
                         f"{tuple(kernel.shape)}")
    impl = _backends.resolve("upfirdn2d", impl, x.device, _IMPLS)
    args = (up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1)
    if impl == "ref":
        return call_ref("upfirdn2d", ref.upfirdn2d, x, kernel, *args)
    return _upfirdn2d(x, kernel, *args, impl)
