"""Neighbourhood classes of a label map: the exact shortcut for stacked
convolutions of region-constant maps (ZPdesu/SEAN,
models/networks/normalization.py, ACE: conv_gamma / conv_beta on the
region-broadcast map, and SPADE's convolutions on the one-hot segmap).

A stride-1 k x k convolution of a region-constant map has, at every pixel, a
value that depends only on the labels under the pixel's k*k taps (its
neighbourhood signature), and the same holds for any per-pixel function of
that value. region_classes numbers the distinct signatures of each image, so
such a map is one row per class plus a class map, and a further convolution
of it is hrops.region_conv2d over the classes. SEAN's SPADE branch,
conv3x3 -> ReLU -> conv3x3 on the one-hot map, is computed this way
(hrops.nn.region.SPADE): a 256^2 face map has about 1.1 thousand 3x3
classes, so the second conv's GEMM shrinks about 60-fold.

Custom op (no gradient: integer outputs):
  hrops::region_classes(labels, R, k, padding) -> (classes, signatures)
The CPU kernel groups pixels in one raster pass; on CUDA a kernel writes
every pixel's tap labels (hrops_C::region_tap_labels) and torch.unique
deduplicates them, as the reference does.
"""
import torch

from .. import _backends, ref
from ._checks import check_integer
from ._define import kernel_op
from .region import _labels

_IMPLS = ("ref", "cpu", "cuda")


def _classes_cuda(labels, num_regions, kernel_size, padding):
    """The CUDA kernel gives each output pixel's tap labels; grouping them
    into classes is PyTorch's unique."""
    taps = torch.ops.hrops_C.region_tap_labels(labels, num_regions, kernel_size, padding)
    return ref.region.classes_of_tap_labels(taps)


def _fake(labels, num_regions, kernel_size, padding, impl):
    n, h, w = labels.shape
    grow = 2 * padding - kernel_size + 1
    classes = labels.new_empty((n, h + grow, w + grow))
    count = torch.library.get_ctx().new_dynamic_size()
    return classes, labels.new_empty((n, count, kernel_size * kernel_size))


_region_classes = kernel_op("region_classes", fake=_fake, overrides={"cuda": _classes_cuda},
                            autocast=None)


def region_classes(seg: torch.Tensor, num_regions: int | None = None, kernel_size: int = 3,
                   padding: int = 1, *, impl: str | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels grouped by the labels under the k*k taps of a stride-1
    convolution with zero padding (kernel_size in [1, 255]).

    seg: (N, H, W) integer labels (ids in [0, R), -1 for no region) or SEAN's
    one-hot (N, R, H, W). Returns int64 (classes, signatures):
      classes (N, Ho, Wo): each output pixel's class, numbered per image in
        raster order of first appearance;
      signatures (N, U, k*k): each class's label under each tap (row-major),
        -1 for a tap outside the map or on no region; U is the largest class
        count of the batch and rows past an image's own count hold -1.
    """
    if not isinstance(seg, torch.Tensor):
        raise TypeError(f"seg must be a torch.Tensor, got {type(seg).__name__}")
    if seg.dim() not in (3, 4):
        raise ValueError(f"seg must be (N, H, W) labels or an (N, R, H, W) one-hot map, got "
                         f"shape {tuple(seg.shape)}")
    labels, num_regions = _labels(seg, seg, seg.shape[-2:], num_regions, "itself")
    # bounded: every output pixel's signature holds kernel_size**2 labels
    kernel_size = check_integer(kernel_size, "kernel_size", ge=1, le=255)
    padding = check_integer(padding, "padding", ge=0)
    h, w = labels.shape[1:]
    if min(h, w) + 2 * padding + 1 < kernel_size:
        raise ValueError(f"kernel_size {kernel_size} with padding {padding} does not fit a seg of "
                         f"spatial size {(h, w)}")
    impl = _backends.resolve("region_classes", impl, labels.device, _IMPLS)
    if impl == "ref":
        return ref.region_classes(labels, num_regions, kernel_size, padding)
    return _region_classes(labels, num_regions, kernel_size, padding, impl)
