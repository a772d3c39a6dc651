"""PatchMatch step and soft warp (CoCosNet v2): kernels against the
reference, the reference against a loop that enumerates every candidate
(written from microsoft/CoCosNet-v2 models/networks/patch_match.py) and
against CoCosNet v2's own formulation."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hrops
from hrops import ref
from impls import kernel_impls
from patchmatch_cases import feature_maps

IMPLS = kernel_impls(("cpu", "cuda"))


def _loop_step(a, b, offsets, direction, temperature, topk, truncation):
    """Pixel by pixel, candidate by candidate."""
    n_, _, k, h, w = offsets.shape
    hb, wb = b.shape[-2:]
    new = torch.zeros(n_, 2, topk, h, w)
    probs = torch.zeros(n_, topk, h, w)
    for n in range(n_):
        for r in range(h):
            for c in range(w):
                sources = [(r, c)]
                if direction == "horizontal":
                    sources = [(r, c - 1), (r, c), (r, c + 1)]
                elif direction == "vertical":
                    sources = [(r - 1, c), (r, c), (r + 1, c)]
                cands = []
                for sr, sc in sources:
                    inside = 0 <= sr < h and 0 <= sc < w
                    for j in range(k):
                        dr = offsets[n, 0, j, sr, sc].item() if inside else 0.0
                        dc = offsets[n, 1, j, sr, sc].item() if inside else 0.0
                        tr = min(max(r + dr, 0.0), hb - 1.0)
                        tc = min(max(c + dc, 0.0), wb - 1.0)
                        if truncation:
                            t = int(torch.tensor(tr) * wb + torch.tensor(tc))
                        else:
                            t = math.floor(tr + 0.5) * wb + math.floor(tc + 0.5)
                        cands.append(t)
                scores = torch.stack([(a[n, :, r, c] * b[n, :, t // wb, t % wb]).sum() / temperature
                                      for t in cands])
                p = torch.softmax(scores.double(), 0)
                order = sorted(range(len(cands)), key=lambda m: (-p[m].item(), m))[:topk]
                for i, m in enumerate(order):
                    new[n, 0, i, r, c] = cands[m] // wb - r
                    new[n, 1, i, r, c] = cands[m] % wb - c
                    probs[n, i, r, c] = p[m]
    return new, probs


@pytest.mark.parametrize("direction", ["none", "horizontal", "vertical"])
@pytest.mark.parametrize("truncation", [False, True])
def test_ref_step_matches_loop(direction, truncation):
    a, b, off = feature_maps(fractional=True)
    topk = 2 if direction == "none" else 4
    got = ref.patchmatch_step(a, b, off, direction, 0.2, topk, truncation)
    expected = _loop_step(a, b, off, direction, 0.2, topk, truncation)
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1].float(), atol=1e-6, rtol=1e-5)


def _cocosnet_step(a, b, off_x, off_y, direction, temperature):
    """CoCosNet v2's PropagationFaster + Evaluate, re-expressed from
    microsoft/CoCosNet-v2 models/networks/patch_match.py and ops.py (square
    maps, float index truncation, topk of the softmax)."""
    n, k, h, w = off_x.shape
    if direction == "horizontal":
        z = torch.zeros(n, k, h, 1)
        cat = lambda o: torch.cat((torch.cat((z, o[..., :-1]), 3), o, torch.cat((o[..., 1:], z), 3)), 1)
    else:
        z = torch.zeros(n, k, 1, w)
        cat = lambda o: torch.cat((torch.cat((z, o[:, :, :-1]), 2), o, torch.cat((o[:, :, 1:], z), 2)), 1)
    off_x, off_y = cat(off_x), cat(off_y)
    xs = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    ys = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
    inds = ((xs + off_x).clamp(0, h - 1) * w + (ys + off_y).clamp(0, w - 1)).long()
    m = inds.shape[1]
    bf = b.flatten(2)
    costs = torch.stack([(a.flatten(2) * torch.gather(bf, 2, inds[:, i].reshape(n, 1, -1).expand_as(bf)))
                         .sum(1) / temperature for i in range(m)], dim=-1)  # (N, HW, M)
    prob, top = torch.topk(torch.softmax(costs, -1), m // 3, dim=-1)
    best = torch.gather(inds.flatten(2).transpose(1, 2), -1, top).transpose(1, 2).view(n, -1, h, w)
    return best // w - xs, best % w - ys, prob.transpose(1, 2).reshape(n, -1, h, w)


@pytest.mark.parametrize("impl,device", IMPLS + [pytest.param("ref", "cpu", id="ref")])
def test_step_matches_cocosnet_v2(impl, device):
    a, b, off = feature_maps(c=8, h=6, w=6, hb=6, wb=6, k=4, fractional=True)
    for direction in ("horizontal", "vertical"):
        x, y, prob = _cocosnet_step(a, b, off[:, 0], off[:, 1], direction, 0.5)
        new, p = hrops.patchmatch_step(a.to(device), b.to(device), off.to(device), direction, 0.5,
                                       cocosnet_truncation=True, impl=impl)
        torch.testing.assert_close(new[:, 0].cpu(), x)
        torch.testing.assert_close(new[:, 1].cpu(), y)
        torch.testing.assert_close(p.cpu(), prob, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("case", ["rect", "square", "topk_all", "cold", "hot", "fractional"])
def test_step_kernel_matches_ref(impl, device, case):
    kw = dict(rect={}, square=dict(h=8, w=8, hb=8, wb=8), topk_all={}, cold={}, hot={},
              fractional=dict(fractional=True))[case]
    a, b, off = feature_maps(**kw)
    temperature = {"cold": 1e-3, "hot": 1e3}.get(case, 0.05)
    for direction in ("none", "horizontal", "vertical"):
        m = off.shape[2] * (1 if direction == "none" else 3)
        topk = m if case == "topk_all" else None
        for trunc in (False, True):
            got = hrops.patchmatch_step(a.to(device), b.to(device), off.to(device), direction,
                                        temperature, topk, cocosnet_truncation=trunc, impl=impl)
            expected = ref.patchmatch_step(a, b, off, direction, temperature, topk or off.shape[2], trunc)
            torch.testing.assert_close(got[0].cpu(), expected[0])
            # At T = 1e-3 scores reach +-1000: fp32 dot-product rounding (1e-7
            # relative) moves a softmax weight by ~1e-4 relative.
            tol = dict(atol=1e-4, rtol=1e-3) if case == "cold" else dict(atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(got[1].cpu(), expected[1], **tol)


def _fma_sensitive_offsets(h, w, k):
    """Fractional (N=1, 2, k, h, w) offsets whose target row * w + col truncates
    differently when computed with one rounding (a fused multiply-add) than
    with CoCosNet v2's two float32 roundings."""
    gen = torch.Generator().manual_seed(3)
    rows = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    cols = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    picked = []
    while len(picked) < k:
        off = torch.rand(2, 4096, h, w, generator=gen) * 6 - 3
        tr = (rows + off[0]).clamp(0, h - 1)
        tc = (cols + off[1]).clamp(0, w - 1)
        two_roundings = (tr * w + tc).long()  # torch: separate multiply and add
        one_rounding = (tr.double() * w + tc.double()).float().long()
        differ = (two_roundings != one_rounding).flatten(1).any(1).nonzero().flatten().tolist()
        picked += [off[:, i] for i in differ]
    return torch.stack(picked[:k], dim=1)[None]


@pytest.mark.parametrize("impl,device", IMPLS)
def test_truncation_rounds_twice_like_cocosnet(impl, device):
    """A kernel that contracts row * Wb + col into a fused multiply-add picks
    a neighbouring pixel for some fractional offsets: after the GRU's
    fractional updates such flips cascade through a whole level."""
    h, w, k = 5, 7, 4
    off = _fma_sensitive_offsets(h, w, k)
    gen = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(1, 8, h, w, generator=gen), dim=1)
    b = F.normalize(torch.randn(1, 8, h, w, generator=gen), dim=1)
    for direction in ("none", "horizontal"):
        got, _ = hrops.patchmatch_step(a.to(device), b.to(device), off.to(device), direction, 0.1,
                                       3 * k if direction != "none" else k,
                                       cocosnet_truncation=True, impl=impl)
        expected, _ = ref.patchmatch_step(a, b, off, direction, 0.1, 3 * k if direction != "none"
                                          else k, True)
        torch.testing.assert_close(got.cpu(), expected)
    r = torch.randn(1, 3, h, w, generator=gen)
    torch.testing.assert_close(
        hrops.patchmatch_warp(a.to(device), b.to(device), r.to(device), off.to(device), 0.1,
                              cocosnet_truncation=True, impl=impl).cpu(),
        ref.patchmatch_warp(a, b, r, off, 0.1, True), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("impl,device", IMPLS + [pytest.param("ref", "cpu", id="ref")])
def test_identical_features_break_ties_to_the_lower_candidate(impl, device):
    a = torch.ones(1, 4, 3, 3)
    off = torch.tensor([0.0, 1.0, -1.0]).view(1, 1, 3, 1, 1).repeat(1, 2, 1, 3, 3)
    new, p = hrops.patchmatch_step(a.to(device), a.to(device), off.to(device), "none", 0.1, impl=impl)
    # All scores tie, so the order is the candidates' order, clamped at borders.
    assert new[0, 0, :, 1, 1].tolist() == [0.0, 1.0, -1.0]
    torch.testing.assert_close(p.cpu(), torch.full((1, 3, 3, 3), 1 / 3))


@pytest.mark.parametrize("impl,device", IMPLS)
def test_out_of_range_and_non_finite_offsets_stay_inside(impl, device):
    a, b, off = feature_maps()
    off[:, :, 0] = 1e9
    off[:, 0, 1] = float("nan")
    off[:, 1, 2] = -float("inf")
    new, _ = hrops.patchmatch_step(a.to(device), b.to(device), off.to(device), "horizontal", 0.1,
                                   impl=impl)
    h, w = a.shape[-2:]
    rows = torch.arange(h).view(1, 1, h, 1) + new[:, 0].cpu()
    cols = torch.arange(w).view(1, 1, 1, w) + new[:, 1].cpu()
    assert rows.min() >= 0 and rows.max() <= b.shape[2] - 1
    assert cols.min() >= 0 and cols.max() <= b.shape[3] - 1
    expected = ref.patchmatch_step(a, b, off, "horizontal", 0.1, 3)
    torch.testing.assert_close(new.cpu(), expected[0])


@pytest.mark.parametrize("impl,device", IMPLS + [pytest.param("ref", "cpu", id="ref")])
def test_warp_matches_ref_and_gradcheck(impl, device):
    a, b, off = feature_maps(c=5, k=4, fractional=True)
    r = torch.randn(2, 3, 6, 4)
    args = [t.double().to(device).requires_grad_() for t in (a, b, r)]
    for trunc in (False, True):
        fn = lambda x, y, z: hrops.patchmatch_warp(x, y, z, off.to(device), 0.3,
                                                   cocosnet_truncation=trunc, impl=impl)
        expected = ref.patchmatch_warp(*[t.detach().cpu() for t in args], off, 0.3, trunc)
        torch.testing.assert_close(fn(*args).cpu(), expected)
        assert torch.autograd.gradcheck(fn, args)


def test_warp_ref_matches_cocosnet_v2_form():
    """CoCosNet v2's final warp: softmax over the candidates, weighted sum of ref pixels."""
    a, b, off = feature_maps(c=4, h=4, w=4, hb=4, wb=4, k=3)
    r = torch.randn(2, 3, 4, 4)
    xs, ys = torch.arange(4.0).view(1, 1, 4, 1), torch.arange(4.0).view(1, 1, 1, 4)
    inds = ((xs + off[:, 0]).clamp(0, 3) * 4 + (ys + off[:, 1]).clamp(0, 3)).long().flatten(2)
    costs = torch.stack([(a.flatten(2) * torch.gather(b.flatten(2), 2, inds[:, i:i + 1].expand(2, 4, 16)))
                         .sum(1) / 0.3 for i in range(3)], -1)
    weight = torch.softmax(costs, -1)
    warp = sum(torch.gather(r.flatten(2), 2, inds[:, i:i + 1].expand(2, 3, 16)) * weight[:, None, :, i]
               for i in range(3)).view(2, 3, 4, 4)
    torch.testing.assert_close(ref.patchmatch_warp(a, b, r, off, 0.3), warp)


@pytest.mark.parametrize("impl,device", IMPLS)
def test_opcheck_and_empty(impl, device):
    a, b, off = [t.to(device) for t in feature_maps()]
    r = torch.randn(2, 3, 6, 4, device=device)
    torch.library.opcheck(torch.ops.hrops.patchmatch_step.default, (a, b, off, 1, 0.1, 3, False, None, impl))
    args = [t.clone().requires_grad_() for t in (a, b, r)]
    b_last = b.contiguous(memory_format=torch.channels_last).requires_grad_()
    for save in (False, True):
        for feat_b in (args[1], b_last):  # the CPU saves a copy of feat_b's rows, or none
            torch.library.opcheck(torch.ops.hrops.patchmatch_warp.default,
                                  (args[0], feat_b, args[2], off, 0.1, True, save, impl))
    new, p = hrops.patchmatch_step(a[:0], b[:0], off[:0], impl=impl)
    assert new.shape == (0, 2, 3, 5, 7) and p.shape == (0, 3, 5, 7)
    assert hrops.patchmatch_warp(a[:0], b[:0], r[:0], off[:0], impl=impl).shape == (0, 3, 5, 7)


EMPTY_CASES = {"N": (slice(0, 0), slice(None), slice(None)),
               "H": (slice(None), slice(0, 0), slice(None)),
               "W": (slice(None), slice(None), slice(0, 0))}


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("empty", list(EMPTY_CASES))
@pytest.mark.parametrize("b_empty", [False, True], ids=["b", "empty_b"])
def test_warp_ref_matches_kernel_on_empty_inputs(impl, device, empty, b_empty):
    """N = 0 or H * W = 0: empty (N, Cr, H, W) outputs and (zero) gradients of
    the inputs' shapes, from the reference as from the kernels."""
    n, hs, ws = EMPTY_CASES[empty]
    a, b, off = feature_maps(k=4, fractional=True, dtype=torch.float64)
    r = torch.randn(2, 3, 6, 4, dtype=torch.float64)
    a, off = a[n, :, hs, ws], off[n, :, :, hs, ws]
    b, r = b[n], r[n]
    if b_empty:
        b, r = b[:, :, :0], r[:, :, :0]
    results = []
    for run_impl, run_device in ((impl, device), ("ref", "cpu")):
        args = [t.to(run_device).requires_grad_() for t in (a, b, r)]
        out = hrops.patchmatch_warp(*args, off.to(run_device), 0.1, impl=run_impl)
        grads = torch.autograd.grad(out, args, torch.ones_like(out))
        results.append((out, grads))
    (got, got_grads), (want, want_grads) = results
    assert got.shape == want.shape == (a.shape[0], 3, *a.shape[2:]) and want.dtype == torch.float64
    torch.testing.assert_close(got.cpu(), want)
    for g, w, t in zip(got_grads, want_grads, (a, b, r)):
        assert g.shape == w.shape == t.shape
        torch.testing.assert_close(g.cpu(), w)


@pytest.mark.parametrize("impl,device", IMPLS + [pytest.param("ref", "cpu", id="ref")])
@pytest.mark.parametrize("empty", list(EMPTY_CASES))
def test_step_keeps_float64_on_empty_inputs(impl, device, empty):
    """N * H * W = 0 returns empty outputs in the inputs' dtypes, as a
    non-empty call does."""
    n, hs, ws = EMPTY_CASES[empty]
    a, b, off = feature_maps(dtype=torch.float64)
    a, b, off = a[n, :, hs, ws].to(device), b[n].to(device), off[n, :, :, hs, ws].to(device)
    new, p = hrops.patchmatch_step(a, b, off, "vertical", 0.1, 4, impl=impl)
    assert new.shape == (a.shape[0], 2, 4, *a.shape[2:])
    assert p.shape == (a.shape[0], 4, *a.shape[2:])
    assert new.dtype == torch.float64 and p.dtype == torch.float64


@pytest.mark.parametrize("impl,device", IMPLS + [pytest.param("ref", "cpu", id="ref")])
def test_step_float64_outputs_and_float32_scoring(impl, device):
    """float64 inputs give float64 outputs on every impl; the kernels score
    and softmax in float32 (the reference in float64), so the probabilities
    agree with the reference to float32 precision, not float64's."""
    a, b, off = feature_maps(c=16, h=8, w=9, hb=7, wb=6, k=4, fractional=True,
                             dtype=torch.float64)
    for direction in ("none", "horizontal"):
        got = hrops.patchmatch_step(a.to(device), b.to(device), off.to(device), direction, 0.05,
                                    impl=impl)
        want = ref.patchmatch_step(a, b, off, direction, 0.05, 4)
        assert got[0].dtype == torch.float64 and got[1].dtype == torch.float64
        assert torch.equal(got[0].cpu(), want[0])
        torch.testing.assert_close(got[1].cpu(), want[1], atol=1e-6, rtol=1e-5)
        if impl == "ref":  # float64 scoring: float64 precision
            torch.testing.assert_close(got[1], want[1], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("op,kwargs,expected", [
    ("step", dict(temperature=np.float64(0.05), topk=np.int64(2), cocosnet_truncation=np.bool_(True),
                  random_search=np.int64(2), alpha=np.float32(0.5), max_radius=torch.tensor(3)),
     dict(temperature=0.05, topk=2, cocosnet_truncation=True, random_search=2, alpha=0.5,
          max_radius=3.0)),
    ("warp", dict(temperature=torch.tensor(0.05, dtype=torch.float64)), dict(temperature=0.05)),
    ("step", dict(temperature=float("nan")), "temperature must be a real number > 0, got nan"),
    ("warp", dict(temperature="0.1"), "temperature must be a real number > 0, got '0.1'"),
    ("step", dict(temperature=None), "temperature must be a real number > 0, got None"),
    ("step", dict(temperature=True), "temperature must be a real number > 0, got True"),
    ("step", dict(temperature=torch.tensor([0.1, 0.2])),
     r"temperature must be a real number > 0, got a tensor of shape \(2,\)"),
    ("warp", dict(temperature=torch.tensor(0.1, requires_grad=True)),
     "temperature must be a real number; got a tensor that requires grad"),
    ("step", dict(topk=True), "topk must be an integer, got True"),
    ("step", dict(topk=2.0), "topk must be an integer, got 2.0"),
    ("step", dict(cocosnet_truncation="yes"),
     r"cocosnet_truncation must be a bool \(True or False\), got 'yes'"),
    ("warp", dict(cocosnet_truncation=1), r"cocosnet_truncation must be a bool .*, got 1"),
    ("step", dict(direction=0), "direction must be one of 'none', 'horizontal', 'vertical', got 0"),
    ("step", dict(random_search=2, alpha=None), r"alpha must be a real number in \(0, 1\), got None"),
    ("step", dict(random_search=2, max_radius="3"),
     "max_radius must be a finite real number >= 1, got '3'"),
])
def test_scalar_arguments(op, kwargs, expected):
    """NumPy numbers and 0-d tensors count as Python ones; anything else, NaN
    and a tensor that requires grad are ValueErrors naming the argument."""
    a, b, off = feature_maps(dtype=torch.float64)
    r = torch.randn(2, 3, 6, 4, dtype=torch.float64)

    def run(kw):
        if op == "warp":
            return hrops.patchmatch_warp(a, b, r, off, **kw)
        if "random_search" in kw:
            kw = dict(kw, generator=torch.Generator().manual_seed(0))
        return hrops.patchmatch_step(a, b, off, **kw)
    if isinstance(expected, dict):
        torch.testing.assert_close(run(kwargs), run(expected), atol=0, rtol=0)
    else:
        with pytest.raises(ValueError, match=expected):
            run(kwargs)


def test_bad_input_is_rejected():
    a, b, off = feature_maps()
    r = torch.randn(2, 3, 6, 4)
    with pytest.raises(ValueError, match="feat_b must have shape .* same batch and feature channels"):
        hrops.patchmatch_step(a, b[:, :4], off)
    with pytest.raises(ValueError, match=r"offsets must have shape \(N, 2, K, H, W\) = \(2, 2, K, 5, 7\)"):
        hrops.patchmatch_step(a, b, off[:, :, :, :4])
    with pytest.raises(ValueError, match="direction must be one of"):
        hrops.patchmatch_step(a, b, off, "diagonal")
    with pytest.raises(ValueError, match=r"topk must be in \[1, 9\]"):
        hrops.patchmatch_step(a, b, off, topk=10)
    with pytest.raises(ValueError, match="topk must be an integer"):
        hrops.patchmatch_step(a, b, off, topk=2.5)
    with pytest.raises(ValueError, match="temperature must be a real number > 0, got 0.0"):
        hrops.patchmatch_step(a, b, off, temperature=0.0)
    with pytest.raises(ValueError, match="offsets must be float32, float64"):
        hrops.patchmatch_step(a, b, off.long())
    with pytest.raises(ValueError, match=r"ref_img must have shape \(N, Cr, Hb, Wb\)"):
        hrops.patchmatch_warp(a, b, r[..., :3], off)
    with pytest.raises(ValueError, match="at most 96 candidates"):
        hrops.patchmatch_step(a, b, torch.zeros(2, 2, 33, 5, 7))
    with pytest.raises(RuntimeError, match="offsets must have shape"):
        torch.ops.hrops_C.patchmatch_step(a, b, off[:1], 1, 0.1, 3, False, None)


def test_step_outputs_carry_no_gradient():
    a, b, off = feature_maps()
    a.requires_grad_()
    new, p = hrops.patchmatch_step(a, b, off)
    assert not new.requires_grad and not p.requires_grad
