"""The soft warp's C++ CPU kernel in float32 on maps large enough for its
vectorised paths: whole 64-pixel blocks and ragged tails, the specialised
feature widths (32, 64) and others, padded reference channels, the
forward's saved softmax weights and feat_b rows against the backward's own
recomputation,
out-of-range offsets, and thread counts."""
import pytest
import torch

import hrops
from hrops import ref
from patchmatch_cases import feature_maps

pytestmark = pytest.mark.skipif(not hrops._backends.available("cpu", torch.device("cpu")),
                                reason="hrops C++ CPU kernels not built")

NONE = torch.empty(0)  # no saved weights or rows: the kernel recomputes them
T = 0.05
# (C, Cr, K): specialised widths with an RGB reference, then generic widths,
# a reference wider than 4 channels, a ragged candidate count and K = 1.
SHAPES = [(32, 3, 16), (64, 4, 5), (6, 5, 3), (12, 1, 1), (40, 8, 9)]


def _inputs(c, cr, k, h=9, w=23, hb=11, wb=17, extreme=False):
    """Unit features, fractional offsets in [-4, 5), a reference image, a
    grad: h * w = 207 pixels per image is three whole blocks and a tail."""
    a, b, off = feature_maps(n=2, c=c, h=h, w=w, hb=hb, wb=wb, k=k, fractional=True)
    if extreme:  # clamped into B, non-finite offsets count as 0
        off[:, :, 0] = 1e9
        off[0, 0, -1] = float("nan")
        off[1, 1, -1] = -float("inf")
    gen = torch.Generator().manual_seed(1)
    r = torch.randn(2, cr, hb, wb, generator=gen)
    g = torch.randn(2, cr, h, w, generator=gen)
    return a, b, r, off, g


def _grads(fn, a, b, r, g):
    args = [t.clone().requires_grad_() for t in (a, b, r)]
    out = fn(*args)
    out.backward(g)
    return [out.detach()] + [t.grad for t in args]


@pytest.mark.parametrize("c,cr,k", SHAPES)
@pytest.mark.parametrize("trunc", [False, True])
def test_float32_forward_and_grads_match_ref(c, cr, k, trunc):
    a, b, r, off, g = _inputs(c, cr, k, extreme=(c == 32))
    got = _grads(lambda x, y, z: hrops.patchmatch_warp(x, y, z, off, T, cocosnet_truncation=trunc,
                                                       impl="cpu"), a, b, r, g)
    expected = _grads(lambda x, y, z: ref.patchmatch_warp(x, y, z, off.double(), T, trunc),
                      a.double(), b.double(), r.double(), g.double())
    for name, x, y in zip(("out", "grad_a", "grad_b", "grad_ref"), got, expected):
        # Scores reach 1 / T = 20: fp32 rounding of a dot product moves a
        # weight by ~1e-6 relative, its gradient by ~1 / T times more.
        torch.testing.assert_close(x, y.float(), atol=2e-4 * y.abs().max().item(), rtol=1e-3,
                                   msg=name)


def test_saved_weights_and_rows_match_recomputation():
    a, b, r, off, g = _inputs(32, 3, 16)
    out, weights, b_rows = torch.ops.hrops_C.patchmatch_warp(a, b, r, off, T, False, True)
    plain = torch.ops.hrops_C.patchmatch_warp(a, b, r, off, T, False, False)[0]
    torch.testing.assert_close(out, plain, rtol=0, atol=0)
    assert weights.shape == (2, 16, 9, 23) and weights.dtype == torch.float32
    torch.testing.assert_close(weights.sum(1), torch.ones(2, 9, 23))
    torch.testing.assert_close(b_rows, b.permute(0, 2, 3, 1), rtol=0, atol=0)
    saved = torch.ops.hrops_C._patchmatch_warp_backward(g, a, b, r, off, weights, b_rows,
                                                                T, False)
    recomputed = torch.ops.hrops_C._patchmatch_warp_backward(g, a, b, r, off, NONE, NONE, T, False)
    for x, y in zip(saved, recomputed):  # the same weights, the same arithmetic
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match=r"weights must be the forward's \(N, K, H, W\)"):
        torch.ops.hrops_C._patchmatch_warp_backward(g, a, b, r, off, weights[:, :3],
                                                           b_rows, T, False)
    with pytest.raises(RuntimeError, match=r"b_rows must be the forward's contiguous"):
        torch.ops.hrops_C._patchmatch_warp_backward(g, a, b, r, off, weights,
                                                           b_rows[:, :, :5], T, False)


def test_channels_last_feat_b_is_its_own_rows():
    a, b, r, off, g = _inputs(32, 3, 16)
    b_last = b.contiguous(memory_format=torch.channels_last)
    _, weights, b_rows = torch.ops.hrops_C.patchmatch_warp(a, b_last, r, off, T, False, True)
    assert b_rows.shape == (0, 11, 17, 32)
    saved = torch.ops.hrops_C._patchmatch_warp_backward(g, a, b_last, r, off, weights,
                                                                b_rows, T, False)
    recomputed = torch.ops.hrops_C._patchmatch_warp_backward(g, a, b, r, off, NONE, NONE, T, False)
    for x, y in zip(saved, recomputed):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_autograd_saves_the_weights_and_feat_b_rows_only():
    a, b, r, off, _ = _inputs(32, 3, 16)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    args = [t.clone().requires_grad_() for t in (a, b, r)]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        hrops.patchmatch_warp(*args, off, T, impl="cpu")
    extra = [t for t in saved if not any(t.data_ptr() == x.data_ptr() for x in (*args, off))]
    assert [tuple(t.shape) for t in extra] == [(2, 16, 9, 23), (2, 11, 17, 32)]
    with torch.no_grad():  # no gradient needed: nothing extra is computed
        assert hrops.patchmatch_warp(*args, off, T, impl="cpu").shape == (2, 3, 9, 23)


def test_backward_is_deterministic_per_thread_count_and_agrees_across_counts():
    a, b, r, off, g = _inputs(32, 3, 16, h=40, w=64, hb=40, wb=64)
    threads = torch.get_num_threads()
    results = {}
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            runs = [torch.ops.hrops_C._patchmatch_warp_backward(g, a, b, r, off, NONE, NONE, T, False)
                    for _ in range(2)]
            for x, y in zip(*runs):
                torch.testing.assert_close(x, y, rtol=0, atol=0)
            results[n] = runs[0]
    finally:
        torch.set_num_threads(threads)
    for n in (2, 3):
        for x, y in zip(results[n], results[1]):
            torch.testing.assert_close(x, y, atol=1e-5 * y.abs().max().item(), rtol=1e-5)


@pytest.mark.compile
def test_compile_fullgraph_keeps_weights_for_the_backward():
    a, b, r, off, g = _inputs(32, 3, 16)
    fn = lambda x, y, z: hrops.patchmatch_warp(x, y, z, off, T, impl="cpu")
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager", dynamic=False)
    got = _grads(compiled, a, b, r, g)
    for x, y in zip(got, _grads(fn, a, b, r, g)):
        torch.testing.assert_close(x, y)
    with torch.no_grad():  # the other branch: no weights
        torch.testing.assert_close(compiled(a, b, r), got[0])
