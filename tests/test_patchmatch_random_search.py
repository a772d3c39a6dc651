"""PatchMatch step's optional random search (classic PatchMatch, Barnes et al.
2009): off by default, the same candidates for every implementation, seeded
by a generator, exponentially shrinking radii around the current best."""
import tracemalloc

import pytest
import torch

import hrops
from hrops import ref
from hrops.ref import patchmatch as ref_patchmatch
from hrops.ops.patchmatch_random_search import random_search_offsets, random_search_radii
from impls import kernel_impls, requires_cuda
from patchmatch_cases import feature_maps

IMPLS = kernel_impls(("cpu", "cuda"))
ALL_IMPLS = IMPLS + [pytest.param("ref", "cpu", id="ref")]


def _maps(hb=9, wb=8, **kw):
    return feature_maps(hb=hb, wb=wb, **kw)


def _gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def _targets(offsets, hb, wb):
    """(row, col) in B of integer offsets (N, 2, M, H, W)."""
    h, w = offsets.shape[-2:]
    rows = torch.arange(h).view(1, 1, h, 1) + offsets[:, 0]
    cols = torch.arange(w).view(1, 1, 1, w) + offsets[:, 1]
    return rows, cols


def test_radius_schedule():
    assert random_search_radii("full", 40, 0.5) == [40, 20, 10, 5, 2.5, 1.25]
    assert random_search_radii(8, 40, 0.5) == [40, 20, 10, 5, 2.5, 1.25, 40, 20]
    assert random_search_radii(3, 9, 1 / 3) == [9, 3, 1]
    assert random_search_radii(0, 40) == []


@pytest.mark.parametrize("impl,device", ALL_IMPLS)
def test_off_by_default_gives_the_old_results(impl, device):
    a, b, off = [t.to(device) for t in _maps(fractional=True)]
    gen = _gen(0, device)
    state = gen.get_state()
    for direction in ("none", "horizontal", "vertical"):
        plain = hrops.patchmatch_step(a, b, off, direction, 0.1, impl=impl)
        off_stage = hrops.patchmatch_step(a, b, off, direction, 0.1, random_search=0,
                                          generator=gen, impl=impl)
        expected = ref.patchmatch_step(a.cpu(), b.cpu(), off.cpu(), direction, 0.1, 3)
        for got in (plain, off_stage):
            assert torch.equal(got[0].cpu(), expected[0])
            torch.testing.assert_close(got[1].cpu(), expected[1], atol=1e-6, rtol=1e-5)
    assert torch.equal(gen.get_state(), state), "random_search=0 must not draw"


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_matches_ref(impl, device, dtype):
    a, b, off = _maps(fractional=True, dtype=dtype)
    for direction, count, topk in (("none", 5, 8), ("horizontal", 4, 3), ("vertical", "full", 13)):
        for trunc in (False, True):
            kw = dict(cocosnet_truncation=trunc, random_search=count)
            got = hrops.patchmatch_step(a.to(device), b.to(device), off.to(device), direction,
                                        0.05, topk, generator=_gen(7, device), impl=impl, **kw)
            expected = hrops.patchmatch_step(a.to(device), b.to(device), off.to(device),
                                             direction, 0.05, topk, generator=_gen(7, device),
                                             impl="ref", **kw)
            assert torch.equal(got[0], expected[0])
            assert got[0].dtype == dtype and got[1].dtype == dtype
            torch.testing.assert_close(got[1], expected[1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("impl,device", IMPLS)
def test_non_contiguous_inputs(impl, device):
    a, b, off = [t.to(device) for t in _maps(h=6, w=6)]
    a_t, b_t = [t.transpose(2, 3).contiguous().transpose(2, 3) for t in (a, b)]
    off_t = off.permute(0, 1, 2, 4, 3).contiguous().permute(0, 1, 2, 4, 3)
    assert not a_t.is_contiguous() and not b_t.is_contiguous() and not off_t.is_contiguous()
    kw = dict(random_search=6, impl=impl)
    got = hrops.patchmatch_step(a_t, b_t, off_t, generator=_gen(1, device), **kw)
    expected = hrops.patchmatch_step(a, b, off, generator=_gen(1, device), **kw)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


@pytest.mark.parametrize("impl,device", ALL_IMPLS)
def test_seeds(impl, device):
    a, b, off = [t.to(device) for t in _maps(h=8, w=8, hb=16, wb=16)]
    # topk = all 9 + 6 candidates: the random ones are part of the output.
    run = lambda seed: hrops.patchmatch_step(a, b, off, "horizontal", 0.1, 15, random_search=6,
                                             generator=_gen(seed, device), impl=impl)
    first, again, other = run(3), run(3), run(4)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])
    # Without a generator the global RNG is used.
    torch.manual_seed(5)
    global_rng = hrops.patchmatch_step(a, b, off, "horizontal", 0.1, 15, random_search=6,
                                       impl=impl)
    torch.manual_seed(5)
    assert torch.equal(global_rng[0], hrops.patchmatch_step(a, b, off, "horizontal", 0.1, 15,
                                                            random_search=6, impl=impl)[0])


@pytest.mark.parametrize("impl,device", ALL_IMPLS)
@pytest.mark.parametrize("trunc", [False, True])
def test_radii_shrink_around_the_best(impl, device, trunc):
    """Identical features make all scores tie, so the output lists the
    candidates in order: [own K | random R]."""
    h, w, hb, wb = 6, 7, 40, 37
    a = torch.ones(2, 3, h, w, device=device)
    b = torch.ones(2, 3, hb, wb, device=device)
    off = torch.randint(-30, 31, (2, 2, 1, h, w), generator=_gen(0)).float().to(device)
    radii = random_search_radii("full", 40, 0.5)  # max_radius defaults to max(Hb, Wb) = 40
    assert radii == [40, 20, 10, 5, 2.5, 1.25]
    new, _ = hrops.patchmatch_step(a, b, off, "none", 1.0, 1 + len(radii), random_search="full",
                                   cocosnet_truncation=trunc, generator=_gen(2, device),
                                   impl=impl)
    rows, cols = _targets(new.cpu(), hb, wb)
    assert rows.min() >= 0 and rows.max() < hb and cols.min() >= 0 and cols.max() < wb
    best = _targets(off.cpu(), hb, wb)
    best_r, best_c = best[0].clamp(0, hb - 1)[:, :1], best[1].clamp(0, wb - 1)[:, :1]
    assert torch.equal(rows[:, :1], best_r) and torch.equal(cols[:, :1], best_c)
    for i, radius in enumerate(radii):
        dr, dc = (rows[:, 1 + i] - best_r[:, 0]).abs(), (cols[:, 1 + i] - best_c[:, 0]).abs()
        assert dr.max() <= int(radius) and dc.max() <= int(radius), (i, radius)
        if i + 1 < len(radii):  # the radius is used, not only bounded: 168 draws per axis
            assert max(dr.max(), dc.max()) > int(radii[i + 1]), (i, radius)


def test_draws_cover_the_whole_window():
    """Uniform integers in [-floor(r), floor(r)]: both ends are reachable."""
    off = torch.zeros(1, 2, 1, 20, 20)
    rand = random_search_offsets(off, 100, 100, [2.5, 1.0], _gen(0))
    assert rand.shape == (1, 2, 2, 20, 20)
    assert set(rand[:, :, 0].unique().tolist()) == {-2, -1, 0, 1, 2}
    assert set(rand[:, :, 1].unique().tolist()) == {-1, 0, 1}


@pytest.mark.parametrize("impl,device", ALL_IMPLS)
def test_never_lowers_the_best_score(impl, device):
    a, b, off = [t.to(device) for t in _maps(h=12, w=12, hb=20, wb=20, k=2)]
    hb, wb = b.shape[-2:]

    def best_score(new):
        idx = ref_patchmatch.targets(new[:, :, :1].cpu(), hb, wb)
        return ref_patchmatch.scores(a.cpu(), b.cpu(), idx, 1.0)[:, 0]

    without = best_score(hrops.patchmatch_step(a, b, off, "vertical", 0.01, impl=impl)[0])
    improved = torch.zeros_like(without, dtype=torch.bool)
    for seed in range(3):
        new, _ = hrops.patchmatch_step(a, b, off, "vertical", 0.01, random_search=8,
                                       generator=_gen(seed, device), impl=impl)
        with_search = best_score(new)
        assert (with_search >= without).all()
        improved |= with_search > without
    assert improved.float().mean() > 0.2  # the search finds better matches


@pytest.mark.parametrize("impl,device", ALL_IMPLS)
def test_empty(impl, device):
    a, b, off = [t.to(device) for t in _maps()]
    new, p = hrops.patchmatch_step(a[:0], b[:0], off[:0], topk=5, random_search=4,
                                   generator=_gen(0, device), impl=impl)
    assert new.shape == (0, 2, 5, 5, 7) and p.shape == (0, 5, 5, 7)
    new, p = hrops.patchmatch_step(a[:0], b[:0, :, :0, :0], off[:0], random_search="full",
                                   impl=impl)
    assert new.shape == (0, 2, 3, 5, 7) and p.shape == (0, 3, 5, 7)


@pytest.mark.parametrize("impl,device", IMPLS)
def test_opcheck(impl, device):
    a, b, off = [t.to(device) for t in _maps()]
    rand = random_search_offsets(off, *b.shape[2:], [4, 2], _gen(0, device))
    torch.library.opcheck(torch.ops.hrops.patchmatch_step.default,
                          (a, b, off, 1, 0.1, 11, False, rand, impl))


@pytest.mark.compile
def test_compile_fullgraph():
    torch._dynamo.reset()
    a, b, off = _maps()

    def fn(a, b, off):
        return hrops.patchmatch_step(a, b, off, "horizontal", 0.1, 4, random_search=5)

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager", dynamic=False)
    torch.manual_seed(11)
    got = compiled(a, b, off)
    torch.manual_seed(11)
    expected = fn(a, b, off)
    assert torch.equal(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])


def test_bad_input_is_rejected():
    a, b, off = _maps()
    with pytest.raises(ValueError, match=r"at most 96 .*\(9 propagated \+ 88 from random search"):
        hrops.patchmatch_step(a, b, off, random_search=88)
    hrops.patchmatch_step(a, b, off, random_search=87)  # 96: the limit itself is fine
    for count in (-1, True, "some", 2.0):
        with pytest.raises(ValueError, match="random_search must be a number of candidates >= 0"):
            hrops.patchmatch_step(a, b, off, random_search=count)
    for alpha in (0.0, 1.0, float("nan")):
        with pytest.raises(ValueError, match=r"alpha must be a real number in \(0, 1\)"):
            hrops.patchmatch_step(a, b, off, random_search=2, alpha=alpha)
    for radius in (0.5, float("inf")):
        with pytest.raises(ValueError, match="max_radius must be a finite real number >= 1"):
            hrops.patchmatch_step(a, b, off, random_search=2, max_radius=radius)
    with pytest.raises(ValueError, match="generator must be a torch.Generator or None"):
        hrops.patchmatch_step(a, b, off, random_search=2, generator=0)
    with pytest.raises(ValueError, match="offsets must hold K >= 1 candidates, got K = 0"):
        hrops.patchmatch_step(a, b, off[:, :, :0], "none", topk=1, random_search=2)
    meta = [t.to("meta") for t in (a, b, off)]
    with pytest.raises(ValueError, match="generator must be on feat_a's device meta, got cpu"):
        hrops.patchmatch_step(*meta, random_search=2, generator=_gen(0))
    with pytest.raises(ValueError, match=r"topk must be in \[1, 11\]"):
        hrops.patchmatch_step(a, b, off, topk=12, random_search=2)
    rand = torch.zeros(2, 2, 2, 5, 7)
    with pytest.raises(RuntimeError, match="random_offsets must have shape"):
        torch.ops.hrops_C.patchmatch_step(a, b, off, 1, 0.1, 3, False, rand[:1])
    with pytest.raises(RuntimeError, match="at most 96 candidates"):
        torch.ops.hrops_C.patchmatch_step(a, b, off, 1, 0.1, 3, False, torch.zeros(2, 2, 88, 5, 7))


def test_too_many_random_candidates_are_rejected_before_any_list_is_built():
    """The 96-candidate limit is checked against the room the propagated
    candidates leave, before the radii are listed: 10**12 candidates, or the
    schedule of an alpha close to 1 (~2e12 radii), would exhaust memory."""
    a, b, off = _maps()
    tracemalloc.start()
    try:
        # Small enough to finish if the lists were built, large enough to show it.
        with pytest.raises(ValueError, match=r"\(9 propagated \+ 10000000 from random search"):
            hrops.patchmatch_step(a, b, off, random_search=10**7)
        with pytest.raises(ValueError, match=r"\(9 propagated \+ more than 87 from random"):
            hrops.patchmatch_step(a, b, off, random_search="full", alpha=1 - 1e-6)
        hrops.patchmatch_step(a, b, off, "none", random_search=4, alpha=1 - 1e-6)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
        with pytest.raises(ValueError, match=r"got 1000000000009 \(9 propagated \+ 10+ from"):
            hrops.patchmatch_step(a, b, off, random_search=10**12)
        with pytest.raises(ValueError, match=r"got more than 96 \(9 propagated \+ more than 87"):
            hrops.patchmatch_step(a, b, off, random_search="full", alpha=1 - 1e-12)
        with pytest.raises(ValueError, match=r"got 121 \(120 propagated \+ 1 from random search"):
            hrops.patchmatch_step(a, b, torch.zeros(2, 2, 40, 5, 7), random_search=1)
    finally:
        tracemalloc.stop()


@requires_cuda
def test_cuda_generator_on_cuda():
    a, b, off = [t.cuda() for t in _maps()]
    got = hrops.patchmatch_step(a, b, off, random_search=4, generator=_gen(0, "cuda"), impl="cuda")
    expected = hrops.patchmatch_step(a, b, off, random_search=4, generator=_gen(0, "cuda"),
                                     impl="ref")
    assert torch.equal(got[0], expected[0])
