"""SEAN's region ops in plain PyTorch (SEEDS.md section 3).

A label map (N, H, W) holds a region id in [0, R) per pixel, or -1 for a
pixel in no region. The math is SEEDS.md's vectorised form with masks
M[n, j, p] = [label(n, p) == j]:
  region_avg_pool:  v[n, j, :] = sum_p M[n, j, p] feat[n, :, p] / sum_p M[n, j, p]
                    (exactly 0 for a region with no pixels)
  region_broadcast: out[n, :, p] = sum_j M[n, j, p] codes[n, j, :] (0 in no region)
  region_conv2d:    conv2d(region_broadcast(codes, labels), weight, bias, padding)
"""
import torch
import torch.nn.functional as F


def region_masks(labels: torch.Tensor, num_regions: int, dtype: torch.dtype) -> torch.Tensor:
    """(N, H, W) labels -> (N, R, H*W) 0/1 masks (a -1 pixel is in none)."""
    ids = torch.arange(num_regions, device=labels.device)
    return (labels.flatten(1)[:, None, :] == ids[None, :, None]).to(dtype)


def masked_avg_pool(feat: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """SEAN's pooling for any 0/1 masks (N, R, H*W), overlapping ones included:
    a pixel counts in every region whose mask holds it."""
    sums = torch.bmm(masks, feat.flatten(2).transpose(1, 2))
    area = masks.sum(2, keepdim=True)
    return torch.where(area > 0, sums / area.clamp_min(1), torch.zeros_like(sums))


def region_avg_pool(feat: torch.Tensor, labels: torch.Tensor, num_regions: int) -> torch.Tensor:
    """feat (N, C, H, W), labels (N, H, W) -> (N, R, C) region means."""
    return masked_avg_pool(feat, region_masks(labels, num_regions, feat.dtype))


def region_broadcast(codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """codes (N, R, C), labels (N, H, W) -> (N, C, H, W)."""
    n, num_regions, c = codes.shape
    masks = region_masks(labels, num_regions, codes.dtype)
    return torch.bmm(codes.transpose(1, 2), masks).view(n, c, *labels.shape[1:])


def region_conv2d(codes: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None = None, padding: int = 1) -> torch.Tensor:
    """conv2d of the broadcast map, dense (zero padding)."""
    return F.conv2d(region_broadcast(codes, labels), weight, bias, padding=padding)
