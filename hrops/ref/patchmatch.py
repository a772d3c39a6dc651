"""CoCosNet v2's PatchMatch in plain PyTorch (microsoft/CoCosNet-v2,
models/networks/patch_match.py, PropagationFaster / Evaluate), vectorised
(the original loops over candidates in Python).

Offsets (N, 2, K, H, W): [:, 0] row and [:, 1] column displacements from
each pixel of map A (H x W) into map B (Hb x Wb); targets are clamped into B.
"""
import torch
import torch.nn.functional as F

__all__ = ["patchmatch_step", "patchmatch_warp"]

DIRECTIONS = {"none": 0, "horizontal": 1, "vertical": 2}


def targets(offsets, hb, wb, cocosnet_truncation=False):
    """Flat B index (N, K, H, W) of every candidate. Fractional offsets round
    each coordinate to nearest (halves up), or, with cocosnet_truncation,
    truncate the float32 row * Wb + col as CoCosNet v2 does. Non-finite
    offsets count as 0."""
    _, _, _, h, w = offsets.shape
    off = offsets.float()
    off = torch.where(torch.isfinite(off), off, torch.zeros_like(off))
    rows = torch.arange(h, device=off.device, dtype=torch.float32).view(1, 1, h, 1)
    cols = torch.arange(w, device=off.device, dtype=torch.float32).view(1, 1, 1, w)
    tr = (rows + off[:, 0]).clamp(0, hb - 1)
    tc = (cols + off[:, 1]).clamp(0, wb - 1)
    if cocosnet_truncation:
        return (tr * wb + tc).long().clamp(max=hb * wb - 1)
    return torch.floor(tr + 0.5).long() * wb + torch.floor(tc + 0.5).long()


def target_offsets(idx, wb):
    """The inverse of `targets`: flat B indices (N, K, H, W) of a Wb-wide map
    -> the (N, 2, K, H, W) float32 (row, column) offsets that reach them from
    each pixel of A."""
    h, w = idx.shape[-2:]
    rows = torch.arange(h, device=idx.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=idx.device).view(1, 1, 1, w)
    return torch.stack((idx // wb - rows, idx % wb - cols), dim=1).float()


def propagate(offsets, direction):
    """[previous neighbour's K | own K | next neighbour's K] along the
    direction; missing neighbours (borders) give zero offsets."""
    if direction == "none":
        return offsets
    dim, pad = (4, (1, 1)) if direction == "horizontal" else (3, (0, 0, 1, 1))
    padded = F.pad(offsets, pad)  # (a shift that also holds for an empty H or W)
    size = offsets.shape[dim]
    return torch.cat((padded.narrow(dim, 0, size), offsets, padded.narrow(dim, 2, size)), dim=2)


def _acc(t):
    """Computation dtype: float32, or float64 for float64 inputs."""
    return torch.promote_types(t.dtype, torch.float32)


def scores(feat_a, feat_b, idx, temperature):
    """<A_p, B_idx> / T for idx (N, M, H, W): (N, M, H, W), in float32
    (float64 for float64 features)."""
    n, c, h, w = feat_a.shape
    m = idx.shape[1]
    b = feat_b.to(_acc(feat_b)).flatten(2)  # (N, C, Hb*Wb)
    picked = torch.gather(b, 2, idx.reshape(n, 1, m * h * w).expand(n, c, -1))
    picked = picked.view(n, c, m, h, w)
    return (feat_a.to(_acc(feat_a)).unsqueeze(2) * picked).sum(1) / temperature


def patchmatch_step(feat_a, feat_b, offsets, direction, temperature, topk,
                    cocosnet_truncation=False, random_offsets=None):
    """Propagation then evaluation: the topk candidates by softmax weight
    (descending, ties to the lower candidate index) as integer offsets in
    offsets' dtype, and their softmax weights in feat_a's dtype (computed in
    float32, float64 for float64 features). Returns (offsets, probs).
    random_offsets (N, 2, R, H, W): random-search candidates evaluated after
    the propagated ones."""
    hb, wb = feat_b.shape[-2:]
    cand = propagate(offsets.float(), direction)
    if random_offsets is not None:
        cand = torch.cat((cand, random_offsets.float()), dim=2)
    idx = targets(cand, hb, wb, cocosnet_truncation)
    prob = torch.softmax(scores(feat_a, feat_b, idx, temperature), dim=1)
    order = torch.sort(prob, dim=1, descending=True, stable=True).indices[:, :topk]
    new = target_offsets(torch.gather(idx, 1, order), wb)
    return new.to(offsets.dtype), torch.gather(prob, 1, order).to(feat_a.dtype)


def patchmatch_warp(feat_a, feat_b, ref, offsets, temperature, cocosnet_truncation=False):
    """Softmax over the K candidates' scores, then the weighted sum of the
    reference pixels at the targets: (N, Cr, H, W). Differentiable in
    feat_a, feat_b and ref."""
    n, _, h, w = feat_a.shape
    hb, wb = feat_b.shape[-2:]
    idx = targets(offsets, hb, wb, cocosnet_truncation)
    k = idx.shape[1]
    weight = torch.softmax(scores(feat_a, feat_b, idx, temperature), dim=1)
    cr = ref.shape[1]
    index = idx.reshape(n, 1, k * h * w).expand(n, cr, -1)  # (reshape's -1 fails for N = 0)
    picked = torch.gather(ref.to(_acc(ref)).flatten(2), 2, index)
    return (picked.view(n, cr, k, h, w) * weight.unsqueeze(1)).sum(2).to(ref.dtype)
