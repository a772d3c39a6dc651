"""SEAN's region ops (SEAN, Zhu et al. CVPR 2020; ZPdesu/SEAN
models/networks/architecture.py, Zencoder, and
models/networks/normalization.py, ACE) as custom ops.

Segmentation inputs (`seg`) are either
  * a label map (N, H, W) of an integer dtype: region ids in [0, R), -1 for a
    pixel in no region (any other value is an error), or
  * SEAN's one-hot float map (N, R, H, W). Any nonzero entry means membership
    (SEAN converts the map with .bool()). A pixel in no region is unlabelled.
    A pixel in several regions is treated as SEAN's math treats it: pooling
    counts it in each of them (SEAN's masked means), broadcasting gives it
    the code of the highest region id (SEAN's masked_scatter_ loop writes
    regions in increasing order, so the last one wins). seg_to_labels() gives
    the label map that broadcasting uses. (Pooling an overlapping one-hot map
    takes a masked path, chosen by a data-dependent check that
    torch.compile skips: compiled code pools by seg_to_labels().)
Resize a segmentation to the feature size with resize_seg() (SEAN's nearest
interpolation); the ops require matching sizes.

Ops (hrops::<name>, with fake impls and autograd; see hrops.ops._define):
  region_avg_pool(feat, labels, R)       (N, C, H, W) -> (N, R, C)
  region_broadcast(codes, labels)        (N, R, C) -> (N, C, H, W)
      per-region means and their broadcast. The backward of each is the
      other's kernel: _region_avg_pool_backward (broadcast / area) and
      _region_broadcast_backward (per-region sums); no tensor but the labels
      is saved, and gradients of every order work.
  region_conv_gather(proj, labels, bias, k, padding)
      conv2d of a region-constant map from the per-region, per-tap projection
      proj (N, R, k*k, O) (the second stage of region_conv2d); its backward
      is _region_conv_gather_backward(grad, labels, R, k, padding).
"""
import torch
import torch.nn.functional as F
from torch.fx.experimental.symbolic_shapes import guard_or_true

from .. import _backends, ref
from ._checks import (check_integer, check_integers, check_same_device_dtype, check_tensor,
                      check_vector)
from ._define import call_ref, kernel_op

_IMPLS = ("ref", "cpu", "cuda")


# --- segmentation helpers -----------------------------------------------------------------------

def resize_seg(seg: torch.Tensor, size) -> torch.Tensor:
    """Nearest resize of a segmentation: a 4-D map (N, R, H, W) of any dtype
    (SEAN's one-hot map, or an integer (N, 1, H, W) label map) channel by
    channel, an integer label map (N, H, W) as one channel, to
    `size` = (h, w) (or h for (h, h)), h, w >= 1, exactly as SEAN's
    F.interpolate(segmap, size, mode='nearest')."""
    if not isinstance(seg, torch.Tensor):
        raise TypeError(f"seg must be a torch.Tensor, got {type(seg).__name__}")
    size = check_integers(size, "size", "a pair (h, w)", scalar=True, ge=1)
    if seg.is_floating_point():
        return F.interpolate(seg, size=size, mode="nearest")
    if seg.dim() not in (3, 4):
        raise ValueError(f"an integer or bool seg must have shape (N, H, W) or (N, R, H, W), got "
                         f"{tuple(seg.shape)}")
    # Nearest interpolation selects rows and columns separately: those of an
    # index ramp (exact in float up to 2**24 pixels) select the labels.
    def picked(length, new_length):
        ramp = torch.arange(length, device=seg.device, dtype=torch.float32).view(1, 1, -1)
        return F.interpolate(ramp, size=new_length, mode="nearest").view(-1).long()
    rows = picked(seg.shape[-2], size[0])
    return seg.index_select(-2, rows).index_select(-1, picked(seg.shape[-1], size[1]))


def seg_to_labels(seg: torch.Tensor) -> torch.Tensor:
    """SEAN one-hot (N, R, H, W) -> int64 label map (N, H, W): the highest
    region whose entry is nonzero, -1 where none is."""
    if seg.shape[1] == 0:  # no region: amax has nothing to reduce
        return torch.full((seg.shape[0], *seg.shape[2:]), -1, dtype=torch.long, device=seg.device)
    ids = torch.arange(seg.shape[1], device=seg.device).view(1, -1, 1, 1)
    return torch.where(seg != 0, ids, -1).amax(1)


def _labels(seg, like, size, num_regions, what):
    """(int64 labels, R) from a label map or one-hot seg matching `like` (the
    tensor named `what`) in batch and device, and spatial `size`; raises
    ValueError naming the problem."""
    if not isinstance(seg, torch.Tensor):
        raise TypeError(f"seg must be a torch.Tensor, got {type(seg).__name__}")
    if num_regions is not None:
        num_regions = check_integer(num_regions, "num_regions", ge=0)
    if seg.is_floating_point():
        if seg.dim() != 4:
            raise ValueError(f"a one-hot seg must have shape (N, R, H, W), got {tuple(seg.shape)}")
        if num_regions is not None and num_regions != seg.shape[1]:
            raise ValueError(f"num_regions={num_regions} but the one-hot seg has "
                             f"{seg.shape[1]} regions")
        num_regions = seg.shape[1]
        spatial = tuple(seg.shape[2:])
    else:
        if seg.dim() != 3 or seg.dtype == torch.bool:
            raise ValueError(f"a label map seg must be an integer tensor of shape (N, H, W), "
                             f"got {seg.dtype} of shape {tuple(seg.shape)}")
        if num_regions is None:
            raise ValueError("num_regions is required with a label map seg")
        spatial = tuple(seg.shape[1:])
    n = like.shape[0]
    if seg.shape[0] != n or spatial != tuple(size):
        raise ValueError(f"seg must match {what} in N and (H, W) = {(n, *size)}, got N = "
                         f"{seg.shape[0]} and (H, W) = {spatial}; resize it with "
                         f"hrops.resize_seg")
    if seg.device != like.device:
        raise ValueError(f"seg must be on the same device as {what} ({like.device}), got "
                         f"{seg.device}")
    labels = seg_to_labels(seg) if seg.is_floating_point() else seg.long()
    if not torch.compiler.is_compiling() and labels.numel():
        low, high = labels.aminmax()
        if low < -1 or high >= num_regions:
            raise ValueError(f"seg labels must be in [0, {num_regions}) or -1 (no region), got "
                             f"values in [{int(low)}, {int(high)}]")
    return labels, num_regions


# --- region average pooling / broadcast ---------------------------------------------------------
# Each op's backward is the other's kernel (its adjoint, with the 1 / area
# scale for pooling), so no tensor but the labels is saved and gradients of
# every order work.

def _pool_fake(feat, labels, num_regions, impl):
    return feat.new_empty((feat.shape[0], num_regions, feat.shape[1]))


def _broadcast_fake(codes, labels, impl):
    return codes.new_empty((codes.shape[0], codes.shape[2], labels.shape[1], labels.shape[2]))


def _save_labels(ctx, inputs, output):
    ctx.impl = inputs[-1]
    ctx.num_regions = inputs[0].shape[1]  # (used by the fill-type ops' backward)
    ctx.save_for_backward(inputs[1])


def _avg_pool_grad(ctx, grad):
    labels, = ctx.saved_tensors
    return _region_avg_pool_backward(grad, labels, ctx.impl), None, None, None


def _avg_pool_backward_grad(ctx, grad):
    labels, = ctx.saved_tensors
    return _region_avg_pool(grad, labels, ctx.num_regions, ctx.impl), None, None


def _broadcast_grad(ctx, grad):
    labels, = ctx.saved_tensors
    return _region_broadcast_backward(grad, labels, ctx.num_regions, ctx.impl), None, None


def _broadcast_backward_grad(ctx, grad):
    labels, = ctx.saved_tensors
    return _region_broadcast(grad, labels, ctx.impl), None, None, None


_region_avg_pool = kernel_op("region_avg_pool", fake=_pool_fake, backward=_avg_pool_grad,
                             setup=_save_labels, autocast="float32")
_region_avg_pool_backward = kernel_op("_region_avg_pool_backward", fake=_broadcast_fake,
                                      backward=_avg_pool_backward_grad, setup=_save_labels,
                                      autocast=None)
_region_broadcast = kernel_op("region_broadcast", fake=_broadcast_fake, backward=_broadcast_grad,
                              setup=_save_labels, autocast="lower_precision")
_region_broadcast_backward = kernel_op("_region_broadcast_backward", fake=_pool_fake,
                                       backward=_broadcast_backward_grad, setup=_save_labels,
                                       autocast=None)


def region_avg_pool(feat: torch.Tensor, seg: torch.Tensor, num_regions: int | None = None, *,
                    impl: str | None = None) -> torch.Tensor:
    """SEAN's region-wise average pooling: feat (N, C, H, W) and a seg of the
    same N, H, W -> (N, R, C), the mean of feat over each region's pixels;
    exactly 0 for a region with no pixels. One pass over feat; the backward
    spreads grad / area without saving feat. Deterministic. A NaN or inf
    stays in its own region, as with scatter_reduce: it makes only its
    region's mean (in its channel) non-finite, or each of its regions' for a
    pixel in several regions of a one-hot seg."""
    check_tensor(feat, "feat", 4, "(N, C, H, W)")
    labels, num_regions = _labels(seg, feat, feat.shape[2:], num_regions, "feat")
    if seg.is_floating_point() and not torch.compiler.is_compiling():
        masks = seg.flatten(2) != 0
        if bool((masks.sum(1) > 1).any()):  # overlapping one-hot: SEAN's masked means
            return call_ref("region_avg_pool", ref.masked_avg_pool, feat, masks.to(feat.dtype))
    impl = _backends.resolve("region_avg_pool", impl, feat.device, _IMPLS)
    if impl == "ref":
        return call_ref("region_avg_pool", ref.region_avg_pool, feat, labels, num_regions)
    return _region_avg_pool(feat, labels, num_regions, impl)


def region_broadcast(codes: torch.Tensor, seg: torch.Tensor, *,
                     impl: str | None = None) -> torch.Tensor:
    """SEAN's per-region broadcast: codes (N, R, C) and a seg (N, H, W) /
    (N, R, H, W) -> (N, C, H, W), each pixel holding its region's code (0 for
    a pixel in no region). The backward is the per-region sum of the grad.
    A NaN or inf code reaches only its own region's pixels."""
    check_tensor(codes, "codes", 3, "(N, R, C)")
    size = seg.shape[-2:] if isinstance(seg, torch.Tensor) else ()
    labels, _ = _labels(seg, codes, size, codes.shape[1], "codes")
    impl = _backends.resolve("region_broadcast", impl, codes.device, _IMPLS)
    if impl == "ref":
        return call_ref("region_broadcast", ref.region_broadcast, codes, labels)
    return _region_broadcast(codes, labels, impl)


# --- region-constant convolution ----------------------------------------------------------------

def _gather_fake(proj, labels, bias, kernel_size, padding, impl):
    grow = 2 * padding - kernel_size + 1
    return proj.new_empty((proj.shape[0], proj.shape[3], labels.shape[1] + grow,
                           labels.shape[2] + grow))


def _gather_backward_fake(grad, labels, num_regions, kernel_size, padding, impl):
    return grad.new_empty((grad.shape[0], num_regions, kernel_size * kernel_size, grad.shape[1]))


def _gather_setup(ctx, inputs, output):
    proj, labels, bias, ctx.kernel_size, ctx.padding, ctx.impl = inputs
    ctx.num_regions = proj.shape[1]
    ctx.has_bias = bias is not None
    ctx.save_for_backward(labels)


def _gather_grad(ctx, grad):
    labels, = ctx.saved_tensors
    grad_proj = _region_conv_gather_backward(grad, labels, ctx.num_regions, ctx.kernel_size,
                                             ctx.padding, ctx.impl)
    grad_bias = grad.sum((0, 2, 3)) if ctx.has_bias else None
    return grad_proj, None, grad_bias, None, None, None


def _gather_backward_setup(ctx, inputs, output):
    _, labels, _, ctx.kernel_size, ctx.padding, ctx.impl = inputs
    ctx.save_for_backward(labels)


def _gather_backward_grad(ctx, grad_grad_proj):
    # The backward is linear in grad with adjoint region_conv_gather.
    labels, = ctx.saved_tensors
    return (_region_conv_gather(grad_grad_proj, labels, None, ctx.kernel_size, ctx.padding,
                                ctx.impl), None, None, None, None, None)


_region_conv_gather = kernel_op("region_conv_gather", fake=_gather_fake, backward=_gather_grad,
                                setup=_gather_setup, autocast="lower_precision")
_region_conv_gather_backward = kernel_op("_region_conv_gather_backward",
                                         fake=_gather_backward_fake,
                                         backward=_gather_backward_grad,
                                         setup=_gather_backward_setup, autocast=None)


def region_projection(codes: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """P[n, r, t, o] = sum_d weight[o, d, t] codes[n, r, d]: every region's
    code through every tap of a (O, D, k, k) weight, one GEMM."""
    n, num_regions, d = codes.shape
    o, _, k, _ = weight.shape
    rows = codes.reshape(n * num_regions, d)
    if guard_or_true(n * num_regions >= 256):  # (unknown when traced: class counts)
        # Many rows (neighbourhood classes): one GEMM against a (D, k*k*O)
        # copy of the weight, straight into P's layout (measured 14 vs 35 ms
        # for 1123 rows, D 128, O 640 on one core).
        return (rows @ weight.permute(1, 2, 3, 0).reshape(d, k * k * o)).view(
            n, num_regions, k * k, o)
    # Few rows (SEAN's regions): (N*R, D) @ (O, D, k*k), batched over O,
    # reads the weight in place (a permuted copy of it would cost more than
    # the GEMM); only the small result is transposed.
    proj = torch.matmul(rows, weight.reshape(o, d, k * k))
    return proj.permute(1, 2, 0).reshape(n, num_regions, k * k, o)


def region_conv2d(codes: torch.Tensor, seg: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None = None, padding: int = 1, *,
                  impl: str | None = None) -> torch.Tensor:
    """conv2d(region_broadcast(codes, seg), weight, bias, padding) (stride 1,
    zero padding) without building the broadcast map: each region's code is
    projected through each tap's weight (one small GEMM), then every output
    pixel sums the k*k projections selected by its neighbours' labels (taps
    outside the image or on unlabelled pixels add 0). Exact up to summation
    order; differentiable in codes, weight and bias. A NaN or inf code
    reaches only the output pixels with a tap on its region, and a NaN or
    inf weight only those where its tap lies on a labelled pixel (the dense
    conv2d also multiplies it by the zeros of unlabelled pixels and of the
    padding, which gives NaN). Likewise in the backward: a NaN or inf output
    gradient reaches the weight gradient only through labelled pixels.

    codes (N, R, D); seg (N, H, W) labels or (N, R, H, W) one-hot;
    weight (O, D, k, k); bias (O,) or None. Returns (N, O, H+2p-k+1, W+2p-k+1).
    """
    check_tensor(codes, "codes", 3, "(N, R, D)")
    check_tensor(weight, "weight", 4, "(O, D, k, k)")
    check_same_device_dtype(codes, "codes", weight, "weight")
    n, num_regions, d = codes.shape
    o, wd, k, k2 = weight.shape
    if wd != d or k2 != k:
        raise ValueError(f"weight must have shape (O, D, k, k) with D = {d} (codes' channels), "
                         f"got {tuple(weight.shape)}")
    if bias is not None:
        check_vector(bias, "bias", o, "O", codes, "codes")
    padding = check_integer(padding, "padding", ge=0)
    size = seg.shape[-2:] if isinstance(seg, torch.Tensor) else ()
    labels, _ = _labels(seg, codes, size, num_regions, "codes")
    if size[0] + 2 * padding < k or size[1] + 2 * padding < k:
        raise ValueError(f"padding {padding} with kernel {k} does not fit a seg of spatial size "
                         f"{tuple(size)}")
    impl = _backends.resolve("region_conv2d", impl, codes.device, _IMPLS)
    if impl == "ref":
        return call_ref("region_conv_gather", ref.region_conv2d, codes, labels, weight, bias,
                        padding)
    return _region_conv_gather(region_projection(codes, weight), labels, bias, k, padding, impl)
