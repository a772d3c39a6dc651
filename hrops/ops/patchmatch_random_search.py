"""PatchMatch's random search (Barnes et al. 2009) for hrops.patchmatch_step.

The candidates are drawn here, in PyTorch, and handed to every implementation
(ref, C++ CPU, CUDA) as extra offsets, so all of them evaluate the same
candidates for the same generator state. Drawing outside the custom op also
keeps torch.Generator objects (which custom ops cannot take) out of it.
"""
import math

import torch

from ..ref.patchmatch import target_offsets, targets


def random_search_radii(count, max_radius, alpha=0.5, limit=None):
    """Search radius of each of `count` random candidates: Barnes et al.'s
    schedule max_radius * alpha**i for i = 0, 1, ... while it is >= 1, started
    over when `count` is longer; count="full" is the schedule once. With a
    `limit`, at most limit + 1 radii are built, so that a caller can reject a
    longer list by its length: 10**12 candidates, or the schedule of an alpha
    close to 1, would not fit in memory."""
    wanted = math.inf if count == "full" else count
    if limit is not None:
        wanted = min(wanted, limit + 1)
    schedule = []
    while len(schedule) < wanted and max_radius * alpha ** len(schedule) >= 1:
        schedule.append(max_radius * alpha ** len(schedule))
    if count == "full":
        return schedule
    return [schedule[i % len(schedule)] for i in range(wanted)]


def random_search_offsets(offsets, hb, wb, radii, generator=None, cocosnet_truncation=False):
    """Random candidates (N, 2, R, H, W) float32 for offsets (N, 2, K, H, W)
    into a Hb x Wb map: candidate i displaces the target of each pixel's
    candidate 0 (the current best of sorted offsets, clamped into B) by
    integers drawn uniformly from [-floor(radii[i]), floor(radii[i])] per
    axis with torch.rand(..., generator=generator) on offsets' device.
    Targets past B's border are clamped when the candidates are evaluated."""
    n, _, _, h, w = offsets.shape
    r = len(radii)
    device = offsets.device
    if n * h * w * r == 0:
        return torch.zeros((n, 2, r, h, w), device=device)
    best = targets(offsets[:, :, :1], hb, wb, cocosnet_truncation)  # (N, 1, H, W)
    centre = target_offsets(best, wb)  # (N, 2, 1, H, W)
    half = torch.tensor([float(math.floor(x)) for x in radii], device=device).view(1, 1, r, 1, 1)
    u = torch.rand((n, 2, r, h, w), generator=generator, device=device)
    # floor(u * (2 half + 1)) is uniform on 0..2 half; float32 rounding of
    # u * (2 half + 1) can reach 2 half + 1 for u just below 1, hence the min.
    step = torch.minimum(torch.floor(u * (2 * half + 1)), 2 * half) - half
    return centre + step
