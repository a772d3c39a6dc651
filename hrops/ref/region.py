"""SEAN's region ops in plain PyTorch (SEAN, Zhu et al. CVPR 2020; ZPdesu/SEAN
models/networks/architecture.py, Zencoder, and
models/networks/normalization.py, ACE).

A label map (N, H, W) holds a region id in [0, R) per pixel, or -1 for a
pixel in no region. The math is the vectorised form of SEAN's per-region
loops (Zencoder.forward, ACE.forward) with masks
M[n, j, p] = [label(n, p) == j]:
  region_avg_pool:  v[n, j, :] = sum_p M[n, j, p] feat[n, :, p] / sum_p M[n, j, p]
                    (exactly 0 for a region with no pixels)
  region_broadcast: out[n, :, p] = sum_j M[n, j, p] codes[n, j, :] (0 in no region)
  region_conv2d:    conv2d(region_broadcast(codes, labels), weight, bias, padding)
The sums over M are scatter_add / gather over the labels, not products with
the masks: a product would spread a NaN or inf to every region (0 * NaN =
NaN), while here, as with scatter_reduce and in the kernels, a non-finite
value stays in its own region (pooling: only its region's mean; broadcast:
only its region's pixels; region_conv2d: only the outputs whose taps lie on
them). Gradients keep to the regions the same way.
"""
import torch
import torch.nn.functional as F

__all__ = ["masked_avg_pool", "region_avg_pool", "region_broadcast", "region_classes",
           "region_conv2d"]


def _slots(labels: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, H, W) labels -> (N, channels, H*W) index of each pixel's slot,
    label + 1: slot 0 takes the pixels in no region."""
    return (labels.flatten(1) + 1)[:, None, :].expand(-1, channels, -1)


def masked_avg_pool(feat: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """SEAN's pooling for any 0/1 masks (N, R, H*W), overlapping ones included:
    a pixel counts in every region whose mask holds it, and in no other."""
    n, num_regions, _ = masks.shape
    image, region, pixel = masks.nonzero(as_tuple=True)
    rows = feat.flatten(2)[image, :, pixel]  # (memberships, C)
    sums = feat.new_zeros((n * num_regions, feat.shape[1]))
    sums = sums.index_add(0, image * num_regions + region, rows).view(n, num_regions, -1)
    return sums / masks.sum(2, keepdim=True).clamp_min(1)


def region_avg_pool(feat: torch.Tensor, labels: torch.Tensor, num_regions: int) -> torch.Tensor:
    """feat (N, C, H, W), labels (N, H, W) -> (N, R, C) region means."""
    n, c = feat.shape[:2]
    sums = feat.new_zeros((n, c, 1 + num_regions))
    sums = sums.scatter_add(2, _slots(labels, c), feat.flatten(2))
    slots = labels.flatten(1) + 1
    area = slots.new_zeros((n, 1 + num_regions)).scatter_add(1, slots, torch.ones_like(slots))
    return (sums[:, :, 1:] / area[:, None, 1:].clamp_min(1)).transpose(1, 2)


def region_broadcast(codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """codes (N, R, C), labels (N, H, W) -> (N, C, H, W)."""
    n, _, c = codes.shape
    table = F.pad(codes, (0, 0, 1, 0)).transpose(1, 2)  # (N, C, 1 + R), slot 0 zero
    return torch.gather(table, 2, _slots(labels, c)).view(n, c, *labels.shape[1:])


def region_conv2d(codes: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None = None, padding: int = 1) -> torch.Tensor:
    """conv2d of the broadcast map, dense (zero padding)."""
    if weight.shape[0] == 0 or weight.shape[1] == 0:
        # F.conv2d returns no output channels for an input without channels,
        # and rejects a weight without output channels: the sum over no
        # channels is 0, plus the bias.
        n, h, w = labels.shape
        size = (h + 2 * padding - weight.shape[-1] + 1, w + 2 * padding - weight.shape[-1] + 1)
        out = codes.new_zeros((n, weight.shape[0], *size))
        return out if bias is None else out + bias.view(1, -1, 1, 1)
    return F.conv2d(region_broadcast(codes, labels), weight, bias, padding=padding)


def region_tap_labels(labels: torch.Tensor, num_regions: int, kernel_size: int,
                      padding: int) -> torch.Tensor:
    """(N, H, W) labels -> (N, Ho, Wo, k*k): the label under each tap of a
    stride-1 k x k conv with zero padding at each output pixel; -1 for a tap
    outside the map, on an unlabelled pixel, or on an id outside [0, R)."""
    n, h, w = labels.shape
    ho, wo = h + 2 * padding - kernel_size + 1, w + 2 * padding - kernel_size + 1
    if ho * wo == 0:
        return labels.new_empty((n, ho, wo, kernel_size * kernel_size))
    labels = torch.where((labels >= 0) & (labels < num_regions), labels, -1)
    padded = F.pad(labels, (padding,) * 4, value=-1)
    windows = padded.unfold(1, kernel_size, 1).unfold(2, kernel_size, 1)
    return windows.flatten(3)


def classes_of_tap_labels(taps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, Ho, Wo, T) tap labels -> (classes (N, Ho, Wo), signatures (N, U, T)):
    the distinct rows of each image numbered in raster order of first
    appearance; signature rows past an image's own class count hold -1.
    One torch.unique over the batch: rows are keyed by (image, taps)."""
    n, ho, wo, t = taps.shape
    device = taps.device
    image = torch.arange(n, device=device).repeat_interleave(ho * wo)
    keys = torch.cat((image[:, None], taps.reshape(n * ho * wo, t)), 1)
    uniq, inverse = torch.unique(keys, dim=0, return_inverse=True)
    first = torch.full((uniq.shape[0],), n * ho * wo, device=device).scatter_reduce(
        0, inverse, torch.arange(n * ho * wo, device=device), "amin")
    order = first.argsort()  # image by image (first appearances are image-major), raster order
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=device)
    counts = torch.bincount(uniq[:, 0], minlength=n)
    start = counts.cumsum(0) - counts  # each image's first global class
    local = rank - start[uniq[:, 0]]  # class number within its image
    classes = local[inverse].view(n, ho, wo)
    u = int(counts.max()) if n else 0
    signatures = taps.new_full((n, u, t), -1)
    signatures[uniq[:, 0], local] = uniq[:, 1:]
    return classes, signatures


def region_classes(labels: torch.Tensor, num_regions: int, kernel_size: int,
                   padding: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbourhood classes: pixels grouped by the labels under their k*k taps."""
    return classes_of_tap_labels(region_tap_labels(labels, num_regions, kernel_size, padding))
