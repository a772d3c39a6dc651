"""CoCosNet v2's PatchMatch as custom ops (CoCosNet v2, Zhou et al. CVPR 2021;
microsoft/CoCosNet-v2, models/networks/patch_match.py).

hrops::patchmatch_step: one propagation + evaluation in one kernel (no
(N, C, candidates, H, W) gather). It is a search: its outputs carry no
gradient (CoCosNet v2 runs it under no_grad).
hrops::patchmatch_warp: the soft warp, differentiable in feat_a, feat_b and
ref. When a gradient is needed, the CPU kernel also returns what its
backward would otherwise recompute, and autograd saves them besides the
inputs: the candidates' softmax weights (N, K, H, W), so the backward skips
re-scoring every candidate, and its channels-last copy of feat_b
(N, Hb, Wb, C), which the backward gathers from (empty when feat_b is
already channels-last in the accumulation dtype). The CUDA kernels
recompute both (empty tensors stand in).
"""

import torch

from .. import _backends, ref
from ..ref.patchmatch import DIRECTIONS
from ._checks import (check_bool, check_choice, check_integer, check_real,
                      check_same_device_dtype, check_tensor)
from ._define import call_ref, kernel_op, no_double_backward
from .patchmatch_random_search import random_search_offsets, random_search_radii

_IMPLS = ("ref", "cpu", "cuda")
MAX_CANDIDATES = 96  # after propagation; csrc/common/patchmatch.h


def _step_fake(feat_a, feat_b, offsets, direction, temperature, topk, cocosnet_truncation,
               random_offsets, impl):
    n, _, h, w = feat_a.shape
    return offsets.new_empty((n, 2, topk, h, w)), feat_a.new_empty((n, topk, h, w))


def _acc_dtype(feat_a):
    return torch.float64 if feat_a.dtype == torch.float64 else torch.float32


def _warp_fake(feat_a, feat_b, ref_img, offsets, temperature, cocosnet_truncation, save_weights,
               impl):
    """(warped, weights, b_rows) when the CPU kernel is asked to save them:
    weights (N, K, H, W) and b_rows (N, Hb, Wb, C, or 0 rows when feat_b is
    its own rows) in the accumulation dtype (float32, float64 for float64
    inputs); else (warped, empty, empty)."""
    out = ref_img.new_empty((feat_a.shape[0], ref_img.shape[1], *feat_a.shape[2:]))
    if not (save_weights and impl == "cpu"):
        return out, out.new_empty(0), out.new_empty(0)
    n, c, h, w = feat_a.shape
    acc = _acc_dtype(feat_a)
    # csrc/cpu/patchmatch_warp_cpu.cpp, b_rows_are_copied
    own_rows = feat_b.dtype == acc and feat_b.permute(0, 2, 3, 1).is_contiguous()
    b_rows = feat_b.new_empty((0 if own_rows else n, *feat_b.shape[2:], c), dtype=acc)
    return out, feat_a.new_empty((n, offsets.shape[2], h, w), dtype=acc), b_rows


def _warp_backward_fake(grad, feat_a, feat_b, ref_img, offsets, weights, b_rows, temperature,
                        cocosnet_truncation, impl):
    return tuple(torch.empty_like(t, memory_format=torch.contiguous_format)
                 for t in (feat_a, feat_b, ref_img))


def _warp_setup(ctx, inputs, output):
    feat_a, feat_b, ref_img, offsets, temperature, trunc, _, impl = inputs
    ctx.save_for_backward(feat_a, feat_b, ref_img, offsets, output[1], output[2])
    ctx.args = (temperature, trunc, impl)
    ctx.mark_non_differentiable(output[1], output[2])


def _warp_grad(ctx, grad, _grad_weights, _grad_b_rows):
    g_a, g_b, g_ref = _patchmatch_warp_backward(grad, *ctx.saved_tensors, *ctx.args)
    return g_a, g_b, g_ref, None, None, None, None, None


# patchmatch_step is a search: its outputs carry no gradient.
_patchmatch_step = kernel_op("patchmatch_step", fake=_step_fake, autocast="float32")
_patchmatch_warp = kernel_op("patchmatch_warp", fake=_warp_fake, backward=_warp_grad,
                             setup=_warp_setup, autocast="float32")
_patchmatch_warp_backward = kernel_op("_patchmatch_warp_backward", fake=_warp_backward_fake,
                                      backward=no_double_backward("patchmatch_warp"), autocast=None)


def _check(feat_a, feat_b, offsets, temperature, cocosnet_truncation):
    """(temperature, cocosnet_truncation) as a float and a bool."""
    check_tensor(feat_a, "feat_a", 4, "(N, C, H, W)")
    check_tensor(feat_b, "feat_b", 4, "(N, C, Hb, Wb)")
    check_tensor(offsets, "offsets", 5, "(N, 2, K, H, W)")
    check_same_device_dtype(feat_a, "feat_a", feat_b, "feat_b")
    if offsets.device != feat_a.device:
        raise ValueError(f"offsets must be on feat_a's device {feat_a.device}, got {offsets.device}")
    n, c, h, w = feat_a.shape
    if feat_b.shape[:2] != (n, c):
        raise ValueError(f"feat_b must have shape (N, C, Hb, Wb) = ({n}, {c}, Hb, Wb): the same "
                         f"batch and feature channels as feat_a, got {tuple(feat_b.shape)}")
    if offsets.shape[0] != n or offsets.shape[1] != 2 or tuple(offsets.shape[3:]) != (h, w):
        raise ValueError(f"offsets must have shape (N, 2, K, H, W) = ({n}, 2, K, {h}, {w}), got "
                         f"{tuple(offsets.shape)}")
    if n * h * w and 0 in feat_b.shape[2:]:
        raise ValueError("feat_b must not be empty when feat_a is not")
    return (check_real(temperature, "temperature", gt=0),
            check_bool(cocosnet_truncation, "cocosnet_truncation"))


def _check_random_search(random_search, max_radius, alpha, generator, feat_a, feat_b,
                         propagated):
    """The random candidates' radii (empty when the stage is off), checked
    against the room that the `propagated` candidates leave before the list
    is built."""
    count = random_search
    if not (isinstance(count, str) and count == "full"):
        try:  # (a bool is no count: True could mean one candidate or the "full" schedule)
            count = check_integer(count, "random_search", ge=0)
        except ValueError:
            raise ValueError(f"random_search must be a number of candidates >= 0 or 'full', got "
                             f"{random_search!r}") from None
    alpha = check_real(alpha, "alpha", gt=0, lt=1)
    if max_radius is None:
        max_radius = max(*feat_b.shape[2:], 1)
    else:
        max_radius = check_real(max_radius, "max_radius", ge=1, finite=True)
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator)}")
        dev, want = generator.device, feat_a.device
        same_index = None in (dev.index, want.index) or dev.index == want.index
        if dev.type != want.type or not same_index:
            raise ValueError(f"generator must be on feat_a's device {want}, got {dev}")
    room = max(MAX_CANDIDATES - propagated, 0)
    radii = random_search_radii(count, max_radius, alpha, limit=room)
    if len(radii) > room:  # only room + 1 radii were built
        drawn = f"more than {room}" if count == "full" else count
        total = f"more than {propagated + room}" if count == "full" else propagated + count
        raise ValueError(f"at most {MAX_CANDIDATES} candidates after propagation are supported, "
                         f"got {total} ({propagated} propagated + {drawn} from random search)")
    return radii


def patchmatch_step(feat_a, feat_b, offsets, direction="horizontal", temperature=0.01, topk=None,
                    *, cocosnet_truncation=False, random_search=0, max_radius=None, alpha=0.5,
                    generator=None, impl=None):
    """One PatchMatch propagation + evaluation (CoCosNet v2's PatchMatchOnce half).

    feat_a (N, C, H, W), feat_b (N, C, Hb, Wb): matching features (CoCosNet v2
    uses unit vectors, so scores are cosine similarities / temperature).
    offsets (N, 2, K, H, W): each pixel's K candidate (row, col) offsets into
    B. direction "horizontal" | "vertical" adds the left/right (up/down)
    neighbours' candidates (zero offsets past the border: 3K candidates);
    "none" evaluates the K as they are. Every candidate is scored
    <A_p, B_target> / temperature, softmaxed over the candidates, and the
    `topk` (default K) most probable are returned, sorted, ties to the lower
    candidate index: (offsets (N, 2, topk, H, W) as integer values in
    offsets' dtype, probabilities (N, topk, H, W)). Targets are clamped into
    B; fractional offsets round per coordinate, or truncate like CoCosNet v2
    with cocosnet_truncation=True. No gradient flows through a search.

    Precision: the outputs keep the inputs' dtypes (offsets' for the offsets,
    feat_a's for the probabilities), but the cpu and cuda kernels score and
    softmax in float32 whatever the input dtype (the CPU kernel's AVX2
    scoring is float32 only): float64 inputs give float64 outputs holding
    float32-precision probabilities. impl="ref" computes in float64 for
    float64 inputs (float32 otherwise), so there it agrees with the kernels to
    float32 precision, and candidates whose scores differ by less than
    float32 rounding may rank differently. At low temperatures the weights
    after the best can underflow to 0 in float32: the kernels then return
    those candidates in candidate order with probability 0, where the float64
    reference still orders them by their (tiny) weights.

    Random search (classic PatchMatch, off by default): random_search=R
    appends R candidates after the propagated ones (M = 3K + R, or K + R
    with direction "none"; at most 96). Candidate i is the target of each
    pixel's own candidate 0 (its current best when offsets are sorted, as
    this op returns them) displaced by integers drawn uniformly from
    [-floor(radius_i), floor(radius_i)] per axis, then clamped into B, with
    radius_i = max_radius * alpha**i (max_radius defaults to max(Hb, Wb))
    while it is >= 1, the schedule starting over when R is longer;
    random_search="full" is the schedule once. The offsets are drawn with
    torch.rand(generator=generator) on feat_a's device before the kernel
    runs, so every impl gives the same result for the same generator state.
    The propagated candidates are all still evaluated: the best score never
    drops compared with no random search. Under torch.compile(fullgraph=True)
    leave generator=None (dynamo cannot trace a torch.Generator argument of
    torch.rand) and seed the global RNG instead.
    """
    temperature, cocosnet_truncation = _check(feat_a, feat_b, offsets, temperature,
                                              cocosnet_truncation)
    direction = check_choice(direction, "direction", tuple(DIRECTIONS))
    k = offsets.shape[2]
    propagated = k if direction == "none" else 3 * k
    radii = _check_random_search(random_search, max_radius, alpha, generator, feat_a, feat_b,
                                 propagated)
    if radii and k == 0:
        raise ValueError("random_search draws around each pixel's candidate 0: offsets must hold "
                         "K >= 1 candidates, got K = 0")
    m = propagated + len(radii)
    topk = k if topk is None else check_integer(topk, "topk")
    if not 1 <= topk <= m:
        raise ValueError(f"topk must be in [1, {m}] ({m} candidates), got {topk}")
    if m > MAX_CANDIDATES:  # by the propagated ones alone: too many random ones raised above
        raise ValueError(f"at most {MAX_CANDIDATES} candidates after propagation are supported, "
                         f"got {m}")
    feat_a, feat_b, offsets = feat_a.detach(), feat_b.detach(), offsets.detach()
    impl = _backends.resolve("patchmatch_step", impl, feat_a.device, _IMPLS)
    rand = None
    if radii:
        rand = random_search_offsets(offsets, *feat_b.shape[2:], radii, generator,
                                     cocosnet_truncation)
    if impl == "ref":
        return call_ref("patchmatch_step", ref.patchmatch_step, feat_a, feat_b, offsets,
                        direction, temperature, topk, cocosnet_truncation, rand)
    return _patchmatch_step(feat_a, feat_b, offsets, DIRECTIONS[direction], temperature, topk,
                            cocosnet_truncation, rand, impl)


def patchmatch_warp(feat_a, feat_b, ref_img, offsets, temperature=0.01, *,
                    cocosnet_truncation=False, impl=None):
    """CoCosNet v2's final warp: softmax over the K candidates' scores
    <A_p, B_target> / temperature, then the weighted sum of ref_img (N, Cr,
    Hb, Wb) at the targets: (N, Cr, H, W). Differentiable in feat_a, feat_b
    and ref_img (not in the offsets). When a gradient is needed, the CPU
    kernel keeps the candidates' softmax weights for the backward (K floats
    per pixel, in float32, float64 for float64 inputs) and its channels-last
    copy of feat_b (unless feat_b is channels-last already), so that the
    backward neither re-scores the candidates nor transposes feat_b again."""
    temperature, cocosnet_truncation = _check(feat_a, feat_b, offsets, temperature,
                                              cocosnet_truncation)
    check_tensor(ref_img, "ref_img", 4, "(N, Cr, Hb, Wb)")
    check_same_device_dtype(feat_a, "feat_a", ref_img, "ref_img")
    if ref_img.shape[0] != feat_a.shape[0] or ref_img.shape[2:] != feat_b.shape[2:]:
        raise ValueError(f"ref_img must have shape (N, Cr, Hb, Wb) = ({feat_a.shape[0]}, Cr, "
                         f"{feat_b.shape[2]}, {feat_b.shape[3]}), got {tuple(ref_img.shape)}")
    if not 1 <= offsets.shape[2] <= MAX_CANDIDATES:
        raise ValueError(f"offsets must hold 1 to {MAX_CANDIDATES} candidates, got "
                         f"{offsets.shape[2]}")
    offsets = offsets.detach()
    impl = _backends.resolve("patchmatch_warp", impl, feat_a.device, _IMPLS)
    if impl == "ref":
        return call_ref("patchmatch_warp", ref.patchmatch_warp, feat_a, feat_b, ref_img,
                        offsets, temperature, cocosnet_truncation)
    needs_grad = torch.is_grad_enabled() and (feat_a.requires_grad or feat_b.requires_grad or
                                              ref_img.requires_grad)
    return _patchmatch_warp(feat_a, feat_b, ref_img, offsets, temperature,
                            cocosnet_truncation, needs_grad, impl)[0]
