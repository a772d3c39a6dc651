"""SEAN's region ops against hrops.ref: region_avg_pool, region_broadcast,
region_conv2d, region_classes and ace_modulate over random label maps
(noise, blobs, only the edge labels -1 and R - 1, one label), label dtypes
and layouts, one-hot segs, region counts around the CPU's 31/32 switch,
kernel sizes and paddings; 1 and 2 threads; float64 gradients."""
import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given

import hrops
from region_cases import TOL, blob_labels, onehot, region_impls

from .harness import Rand, assert_close, at_threads, case, check_grads, layout, wide
from .strategies import dims, dtypes, layouts, seeds, size

IMPLS = region_impls()
# tests/test_region_conv.py: the projection GEMM rounds to half types
# before the taps are summed.
CONV_TOL = {**TOL, torch.float16: dict(atol=1e-2, rtol=1e-2),
            torch.bfloat16: dict(atol=6e-2, rtol=6e-2)}
REGION_COUNTS = st.sampled_from([1, 2, 3, 5, 13, 17, 31, 32, 33]) | st.integers(1, 40)


@st.composite
def seg_params(draw, grad=False):
    big = None if grad else 48
    n, h, w = draw(dims([size(0, 3), size(0, 13, big), size(0, 13, big)],
                        [(1, 2), (64, 128), (64, 128)]))
    return dict(n=n, h=h, w=w, regions=draw(REGION_COUNTS),
                kind=draw(st.sampled_from(["noise", "blobs", "edges", "single"])),
                label_dtype=draw(st.sampled_from([torch.int64, torch.int32])),
                onehot=draw(st.booleans()), seed=draw(seeds))


def _labels(p):
    """(N, H, W) labels in [-1, R): per-pixel noise, painted rectangles,
    only -1, 0 and R - 1 (the ends of the range), or one label everywhere."""
    n, h, w, r = p["n"], p["h"], p["w"], p["regions"]
    rand = Rand(p["seed"])
    if p["kind"] == "noise":
        return rand.ints((n, h, w), -1, r)
    if p["kind"] == "blobs":
        with torch.random.fork_rng(devices=[]):  # blob_labels also draws from the global RNG
            torch.manual_seed(p["seed"])
            return blob_labels(n, h, w, r, seed=p["seed"])
    if p["kind"] == "edges":
        return torch.tensor([-1, 0, r - 1])[rand.ints((n, h, w), 0, 3)]
    return torch.full((n, h, w), int(rand.ints((), -1, r)))


def _seg(p, labels, device, seg_layout):
    """The labels as an integer map in `seg_layout` (the buffer around a
    strided view holds an invalid label) or as SEAN's one-hot map."""
    if p["onehot"]:
        return layout(onehot(labels, p["regions"]), seg_layout, device)
    return layout(labels.to(p["label_dtype"]), seg_layout, device, fill=p["regions"] + 1000)


def _seg_layout(data, p):
    return data.draw(layouts(4 if p["onehot"] else 3, expanded=False), "seg layout")


# --- region_avg_pool / region_broadcast ---------------------------------------------------------

@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_region_avg_pool(impl, device, data):
    p = data.draw(seg_params(), "params")
    c = data.draw(size(0, 17, 70) if p["h"] * p["w"] < 4096 else st.integers(8, 32), "C")
    dtype = data.draw(dtypes(impl, device), "dtype")
    feat_layout = data.draw(layouts(4), "feat layout")
    seg_layout = _seg_layout(data, p)
    with case("region_avg_pool", impl, device):
        labels = _labels(p)
        seg = _seg(p, labels, device, seg_layout)
        feat = layout(Rand(p["seed"] + 1).normal((p["n"], c, p["h"], p["w"]), dtype), feat_layout,
                      device)
        want = hrops.region_avg_pool(wide(feat), labels, p["regions"], impl="ref")
        for threads, y in at_threads(
                lambda: hrops.region_avg_pool(feat, seg, p["regions"], impl=impl)):
            assert y.dtype == dtype, f"{threads} threads: dtype {y.dtype}"
            assert_close(y, want, TOL[dtype], f"{threads} threads")


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_region_broadcast(impl, device, data):
    p = data.draw(seg_params(), "params")
    c = data.draw(size(0, 17, 70) if p["h"] * p["w"] < 4096 else st.integers(8, 32), "C")
    dtype = data.draw(dtypes(impl, device), "dtype")
    codes_layout = data.draw(layouts(3), "codes layout")
    seg_layout = _seg_layout(data, p)
    with case("region_broadcast", impl, device):
        labels = _labels(p)
        seg = _seg(p, labels, device, seg_layout)
        codes = layout(Rand(p["seed"] + 1).normal((p["n"], p["regions"], c), dtype), codes_layout,
                       device)
        want = hrops.region_broadcast(wide(codes), labels, impl="ref")
        for threads, y in at_threads(lambda: hrops.region_broadcast(codes, seg, impl=impl)):
            assert y.dtype == dtype, f"{threads} threads: dtype {y.dtype}"
            assert_close(y, want, TOL[dtype], f"{threads} threads")


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("op", ["region_avg_pool", "region_broadcast"])
@given(data=st.data())
def test_region_pool_broadcast_grads(impl, device, op, data):
    p = data.draw(seg_params(grad=True), "params")
    c = data.draw(size(0, 9), "C")
    with case(f"{op}.grad", impl, device):
        labels = _labels(p)
        seg = _seg(p, labels, device, "contiguous")
        pool = op == "region_avg_pool"
        shape = (p["n"], c, p["h"], p["w"]) if pool else (p["n"], p["regions"], c)
        leaf = Rand(p["seed"] + 1).normal(shape).to(device).requires_grad_()
        extra = (p["regions"],) if pool else ()
        fn = getattr(hrops, op)
        check_grads(lambda t: fn(t, seg, *extra, impl=impl),
                    lambda t: fn(t, labels, *extra, impl="ref"), [leaf], TOL[torch.float64],
                    p["seed"], names=["feat" if pool else "codes"])


# --- region_conv2d ------------------------------------------------------------------------------

@st.composite
def conv_params(draw, grad=False):
    p = draw(seg_params(grad))
    big = None if grad else 24
    p.update(d=draw(size(1, 9, big)), o=draw(size(1, 9, big) if p["h"] * p["w"] < 4096 else
                                              st.integers(8, 16)), k=draw(st.integers(1, 6)),
             bias=draw(st.booleans()))
    p["padding"] = draw(st.integers(0, p["k"] + 1))
    assume(min(p["h"], p["w"]) + 2 * p["padding"] >= p["k"])
    return p


def _conv_inputs(p, dtype, device, names=("contiguous",) * 2):
    """codes and weight in the layouts `names`, and the bias."""
    rand = Rand(p["seed"] + 1)
    k, d = p["k"], p["d"]
    codes = layout(rand.normal((p["n"], p["regions"], d), dtype), names[0], device)
    weight = layout(rand.normal((p["o"], d, k, k), dtype, (d * k * k) ** -0.5), names[1], device)
    bias = rand.normal((p["o"],), dtype).to(device) if p["bias"] else None
    return codes, weight, bias


def _conv_ref(labels, padding):
    """hrops.ref in float64; ATen cannot convolve an empty (H or W = 0) map,
    so there the documented definition conv2d(region_broadcast(...)) is
    padded first (the same zeros)."""
    def run(codes, weight, bias=None):
        if labels.shape[1] and labels.shape[2]:
            return hrops.region_conv2d(codes, labels, weight, bias, padding, impl="ref")
        dense = F.pad(hrops.region_broadcast(codes, labels, impl="ref"), (padding,) * 4)
        return F.conv2d(dense, weight, bias)
    return run


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_region_conv2d(impl, device, data):
    p = data.draw(conv_params(), "params")
    dtype = data.draw(dtypes(impl, device), "dtype")
    names = data.draw(st.tuples(layouts(3), layouts(4)), "layouts of codes, weight")
    seg_layout = _seg_layout(data, p)
    with case("region_conv2d", impl, device):
        labels = _labels(p)
        seg = _seg(p, labels, device, seg_layout)
        codes, weight, bias = _conv_inputs(p, dtype, device, names)
        want = _conv_ref(labels, p["padding"])(wide(codes), wide(weight), wide(bias))
        for threads, y in at_threads(
                lambda: hrops.region_conv2d(codes, seg, weight, bias, p["padding"], impl=impl)):
            assert y.dtype == dtype, f"{threads} threads: dtype {y.dtype}"
            assert_close(y, want, CONV_TOL[dtype], f"{threads} threads")


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_region_conv2d_grads(impl, device, data):
    p = data.draw(conv_params(grad=True), "params")
    with case("region_conv2d.grad", impl, device):
        labels = _labels(p)
        seg = _seg(p, labels, device, "contiguous")
        leaves = [t.requires_grad_() for t in _conv_inputs(p, torch.float64, device)
                  if t is not None]
        check_grads(lambda codes, weight, bias=None: hrops.region_conv2d(
                        codes, seg, weight, bias, p["padding"], impl=impl),
                    _conv_ref(labels, p["padding"]), leaves, TOL[torch.float64], p["seed"],
                    names=["codes", "weight", "bias"])


# --- region_classes -----------------------------------------------------------------------------

@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_region_classes(impl, device, data):
    """Exact equality: the docs define the class numbering (raster order of
    first appearance per image) and the signature rows (-1 past an image's
    own count)."""
    p = data.draw(seg_params(), "params")
    k = data.draw(st.integers(1, 7), "kernel_size")
    padding = data.draw(st.integers(0, k), "padding")
    assume(min(p["h"], p["w"]) + 2 * padding + 1 >= k)
    seg_layout = _seg_layout(data, p)
    with case("region_classes", impl, device):
        labels = _labels(p)
        seg = _seg(p, labels, device, seg_layout)
        want = hrops.region_classes(labels, p["regions"], k, padding, impl="ref")
        for threads, got in at_threads(
                lambda: hrops.region_classes(seg, p["regions"], k, padding, impl=impl)):
            for name, g, w in zip(("classes", "signatures"), got, want):
                assert g.dtype == torch.int64, f"{threads} threads: {name} dtype {g.dtype}"
                assert g.shape == w.shape and torch.equal(g.cpu(), w), (
                    f"{threads} threads: {name} differ: {g.shape} vs {w.shape}, "
                    f"{(g.cpu() != w).sum().item() if g.shape == w.shape else 'n/a'} entries")


# --- ace_modulate -------------------------------------------------------------------------------

@st.composite
def ace_params(draw, grad=False):
    big = None if grad else 48
    return dict(shape=draw(dims([size(0, 3), size(0, 9, big), size(0, 13, big), size(0, 13, big)],
                                [(1, 2), (8, 16), (64, 128), (64, 128)])),
                blend=draw(st.booleans()), seed=draw(seeds))


def _ace_inputs(p, dtype, device, names):
    rand = Rand(p["seed"])
    maps = [layout(rand.normal(p["shape"], dtype), name, device)
            for name in names[:5 if p["blend"] else 3]]
    return maps + ([rand.uniform((2,), 0, 1, dtype).to(device)] if p["blend"] else [])


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_ace_modulate(impl, device, data):
    p = data.draw(ace_params(), "params")
    dtype = data.draw(dtypes(impl, device), "dtype")
    names = data.draw(st.lists(layouts(4), min_size=5, max_size=5), "layouts")
    with case("ace_modulate", impl, device):
        args = _ace_inputs(p, dtype, device, names)
        want = hrops.ace_modulate(*(wide(t) for t in args), impl="ref")
        for threads, y in at_threads(lambda: hrops.ace_modulate(*args, impl=impl)):
            assert y.dtype == dtype, f"{threads} threads: dtype {y.dtype}"
            assert_close(y, want, TOL[dtype], f"{threads} threads")


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_ace_modulate_grads(impl, device, data):
    p = data.draw(ace_params(grad=True), "params")
    names = data.draw(st.lists(layouts(4, expanded=False), min_size=5, max_size=5), "layouts")
    with case("ace_modulate.grad", impl, device):
        leaves = [t.requires_grad_() for t in _ace_inputs(p, torch.float64, device, names)]
        check_grads(lambda *t: hrops.ace_modulate(*t, impl=impl),
                    lambda *t: hrops.ace_modulate(*t, impl="ref"), leaves, TOL[torch.float64],
                    p["seed"], names=["x", "gamma_spade", "beta_spade", "gamma_avg", "beta_avg",
                                      "alpha"])
