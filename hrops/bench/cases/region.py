"""SEAN region op cases, fp32 (ZPdesu/SEAN: models/networks/architecture.py,
Zencoder; models/networks/normalization.py, ACE; models/networks/generator.py;
README.md).

Sizes: SEAN's style encoder pools (B, 512, 128, 128) codes of a 256^2 image
over 19 CelebAMask-HQ regions; ACE broadcasts (B, 19, 512) codes to the
feature size and convolves them (conv_gamma / conv_beta, 3x3); up_2 runs
at 128^2 with 256 output channels. Label maps are synthetic face-like
layouts (nested ellipses), piecewise constant like real parsings.

ace_modulate: SEAN's ACE epilogue at up_2 (256 channels at 128^2).
region_classes: the 3x3 neighbourhood classes of 256^2 label maps.
SEAN's SPADE branch (against SEAN's own module): benchmarks/model_cases/region.py.

Peers: SEAN's own Python loops (masked_select / masked_scatter_ per image
and region), the one-hot bmm (that is "ref"), torch's scatter_reduce 'mean',
index gathering, torch.compile of the reference; for region_conv2d the dense
conv2d on the broadcast map ("ref").
"""
import math

import torch
import torch.nn.functional as F

import hrops
from hrops import ref

from ..harness import Case, Impl, compiled, nbytes

REGIONS = 19
# Region sums run over ~10^3..10^4 fp32 terms (grads of the codes and weights,
# sums of 2^15 pixels for the bias): different summation orders (SEAN's loops,
# bmm, scatter, hrops) differ by ~1e-5 relative.
SUM_TOL = dict(rtol=1e-4, atol=1e-4)
# region_conv2d's weight grad sums 2 x 16384 pixels x 19 regions into entries
# of magnitude ~1e2: the orders differ by up to ~3e-3 absolute.
CONV_TOL = dict(rtol=1e-4, atol=1e-2)
SIZES = {  # (N, C, H, W[, O])
    "default": {"pool": (2, 512, 128, 128), "broadcast": (2, 512, 128, 128),
                "conv": (2, 512, 128, 128, 256), "ace": (1, 256, 128, 128),
                "classes": (2, 256, 256)},
    "quick": {"pool": (1, 16, 16, 16), "broadcast": (1, 16, 16, 16), "conv": (1, 8, 12, 12, 4),
              "ace": (1, 4, 8, 8), "classes": (1, 16, 16)},
}


def cases(quick=False):
    sizes = SIZES["quick" if quick else "default"]
    return [_pool_case(sizes["pool"]), _broadcast_case(sizes["broadcast"]),
            _conv_case(sizes["conv"]), _ace_case(sizes["ace"]),
            _classes_case(sizes["classes"])]


def face_labels(n, h, w, regions=REGIONS, seed=0):
    """Face-parsing-like (N, H, W) int64 labels: region 0 background, then
    ellipses of decreasing size painted in order (skin, hair, eyes, ...)."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(h, dtype=torch.float32)[:, None] / h
    x = torch.arange(w, dtype=torch.float32)[None, :] / w
    out = torch.zeros(n, h, w, dtype=torch.long)
    for i in range(n):
        for r in range(1, regions):
            size = 0.45 * math.exp(-r / 6)
            cy, cx = (0.2 + 0.6 * torch.rand(2, generator=gen)).tolist()
            ry, rx = (size * (0.6 + 0.8 * torch.rand(2, generator=gen))).tolist()
            out[i][((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1] = r
    return out


def one_hot_map(labels, regions, dtype):
    """(N, H, W) labels -> (N, regions, H, W) one-hot map."""
    return F.one_hot(labels, regions).permute(0, 3, 1, 2).to(dtype)


def sean_loop_pool(feat, labels, regions=REGIONS):
    """Zencoder.forward's loop (ZPdesu/SEAN, models/networks/architecture.py)
    on the one-hot map."""
    segmap = one_hot_map(labels, regions, feat.dtype)
    b, c = feat.shape[:2]
    out = feat.new_zeros(b, regions, c)
    for i in range(b):
        for j in range(regions):
            mask = segmap.bool()[i, j]
            if torch.sum(mask) > 0:
                out[i, j] = feat[i].masked_select(mask).reshape(c, -1).mean(1)
    return out


def sean_loop_broadcast(codes, labels):
    """ACE.forward's masked_scatter_ loop (ZPdesu/SEAN,
    models/networks/normalization.py), without fc_mu."""
    b, regions, c = codes.shape
    segmap = one_hot_map(labels, regions, codes.dtype)
    out = codes.new_zeros(b, c, *labels.shape[1:])
    for i in range(b):
        for j in range(regions):
            mask = segmap.bool()[i, j]
            area = int(mask.sum())
            if area > 0:
                out[i].masked_scatter_(mask, codes[i, j].reshape(c, 1).expand(c, area))
    return out


def scatter_mean(feat, labels, regions=REGIONS):
    n, c = feat.shape[:2]
    index = labels.flatten(1)[:, :, None].expand(n, -1, c)
    out = feat.new_zeros(n, regions, c)
    return out.scatter_reduce(1, index, feat.flatten(2).transpose(1, 2), "mean",
                              include_self=False)


def gather_broadcast(codes, labels):
    n, _, c = codes.shape
    index = labels.flatten(1)[:, :, None].expand(n, -1, c)
    return codes.gather(1, index).transpose(1, 2).reshape(n, c, *labels.shape[1:])


def _label(n, c, h, w, extra=""):
    return f"B{n}xC{c}x{h}^2xR{REGIONS}{extra}"


def _pool_case(shape):
    n, c, h, w = shape

    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        return (torch.randn(shape, generator=gen, device=device, dtype=dtype),
                face_labels(n, h, w).to(device))

    def impls(device, dtype):
        return {
            "hrops": Impl(lambda f, l: hrops.region_avg_pool(f, l, REGIONS, impl="auto")),
            "ref": Impl(lambda f, l: ref.region_avg_pool(f, l, REGIONS)),
            "scatter_reduce": Impl(scatter_mean),
            "sean_loop": Impl(sean_loop_pool),
            "compile(ref)": compiled(lambda f, l: ref.region_avg_pool(f, l, REGIONS)),
        }
    io = nbytes(shape) + nbytes((n, h, w), torch.int64) + nbytes((n, REGIONS, c))
    return Case("region_avg_pool", _label(n, c, h, w), make_inputs, impls, fwd_bytes=io,
                bwd_bytes=io, tolerance=SUM_TOL)


def _broadcast_case(shape):
    n, c, h, w = shape

    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        return (torch.randn((n, REGIONS, c), generator=gen, device=device, dtype=dtype),
                face_labels(n, h, w).to(device))

    def impls(device, dtype):
        return {
            "hrops": Impl(lambda x, l: hrops.region_broadcast(x, l, impl="auto")),
            "ref": Impl(ref.region_broadcast),
            "gather": Impl(gather_broadcast),
            "sean_loop": Impl(sean_loop_broadcast),
            "compile(ref)": compiled(ref.region_broadcast),
        }
    io = nbytes(shape) + nbytes((n, h, w), torch.int64) + nbytes((n, REGIONS, c))
    return Case("region_broadcast", _label(n, c, h, w), make_inputs, impls, fwd_bytes=io,
                bwd_bytes=io, tolerance=SUM_TOL)


def _conv_case(shape):
    """SEAN's ACE conv_gamma at up_2: 3x3, style 512 -> 256 channels at 128^2."""
    n, c, h, w, o = shape

    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        return (torch.randn((n, REGIONS, c), generator=gen, device=device, dtype=dtype),
                face_labels(n, h, w).to(device),
                0.02 * torch.randn((o, c, 3, 3), generator=gen, device=device, dtype=dtype),
                torch.randn((o,), generator=gen, device=device, dtype=dtype))

    def impls(device, dtype):
        return {
            "hrops": Impl(lambda x, l, wt, b: hrops.region_conv2d(x, l, wt, b, 1, impl="auto")),
            "ref": Impl(lambda x, l, wt, b: ref.region_conv2d(x, l, wt, b, 1)),
            "hrops_broadcast+conv2d": Impl(lambda x, l, wt, b: F.conv2d(
                hrops.region_broadcast(x, l, impl="auto"), wt, b, padding=1)),
        }
    io = (nbytes((n, REGIONS, c)) + nbytes((n, h, w), torch.int64) + nbytes((o, c, 3, 3))
          + nbytes((n, o, h, w)))
    # hrops' own work: the per-region, per-tap projection (R * 9 * C * O MACs per
    # sample) and k^2 gathered O-vectors per pixel; the dense conv on the
    # broadcast map would do 9 * C * O MACs per pixel (~500x more).
    flops = 2 * n * REGIONS * 9 * c * o + n * h * w * 9 * o
    return Case("region_conv2d", _label(n, c, h, w, f"->O{o}"), make_inputs, impls,
                fwd_bytes=io, bwd_bytes=io + nbytes((o, c, 3, 3)), flops=flops,
                tolerance=CONV_TOL)


def _ace_case(shape):
    """SEAN's ACE epilogue (blend of the region and SPADE branches) at up_2."""
    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        maps = [torch.randn(shape, generator=gen, device=device, dtype=dtype) for _ in range(5)]
        return (*maps, torch.rand((2,), generator=gen, device=device, dtype=dtype))

    def impls(device, dtype):
        return {
            "hrops": Impl(lambda *a: hrops.ace_modulate(*a, impl="auto")),
            "ref": Impl(ref.ace_modulate),
            "compile(ref)": compiled(ref.ace_modulate),
        }
    n, c, h, w = shape
    # alpha's gradient sums over the whole map: compare relative to its size.
    return Case("ace_modulate", f"B{n}xC{c}x{h}^2", make_inputs, impls,
                fwd_bytes=6 * nbytes(shape), bwd_bytes=6 * nbytes(shape),
                tolerance=dict(scaled_atol=1e-5, rtol=1e-5))


def _classes_case(shape):
    n, h, w = shape

    def make_inputs(device, dtype):
        return (face_labels(n, h, w).to(device),)

    def impls(device, dtype):
        return {
            "hrops": Impl(lambda l: hrops.region_classes(l, REGIONS, impl="auto")),
            "ref": Impl(lambda l: ref.region_classes(l, REGIONS, 3, 1)),
            "compile(ref)": compiled(lambda l: ref.region_classes(l, REGIONS, 3, 1)),
        }
    io = 2 * nbytes(shape, torch.int64)  # labels in, classes out (the signatures are small)
    return Case("region_classes", f"B{n}x{h}^2xR{REGIONS}x3x3", make_inputs, impls,
                fwd_bytes=io, bwd_bytes=None)
