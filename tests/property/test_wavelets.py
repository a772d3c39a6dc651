"""Haar DWT / IDWT kernels against hrops.ref: random sizes (odd, empty,
primes), dtypes, layouts, 1 and 2 threads; float64 gradients."""
import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given

import hrops
from hrops import ref
from impls import interpreted, kernel_impls

from .harness import Rand, assert_close, at_threads, case, check_grads, layout, wide
from .strategies import dims, dtypes, layouts, seeds, size

IMPLS = kernel_impls()
# tests/test_haar.py's tolerances: each output is one butterfly of 4 inputs.
TOL = {torch.float32: dict(atol=1e-6, rtol=1e-6), torch.float64: dict(atol=1e-12, rtol=1e-12),
       torch.float16: dict(atol=2e-3, rtol=2e-3), torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2)}


def _image(data, impl, device):
    """(N, C, H, W): edge sizes, wide rows now and then, large maps for the
    threads."""
    large = None if interpreted(impl, device) else [(1, 2), (8, 16), (96, 160), (96, 160)]
    return data.draw(dims([size(0, 3), size(0, 6), size(0, 17, 70), size(0, 17, 70)], large),
                     "shape (N, C, H, W)")


def _coefficients(data, impl, device):
    """(N, C, h, w) of the coefficients and an output size (2h or 2h - 1 per
    dimension, None for (2h, 2w))."""
    n, c, h, w = _image(data, impl, device)
    crop = data.draw(st.none() | st.tuples(st.integers(0, int(h > 0)), st.integers(0, int(w > 0))),
                     "crop (None or 1 row / column off the full size)")
    out = None if crop is None else (2 * h - crop[0], 2 * w - crop[1])
    return (n, c, h, w), out


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_haar_dwt(impl, device, data):
    shape = _image(data, impl, device)
    dtype = data.draw(dtypes(impl, device), "dtype")
    name = data.draw(layouts(4), "layout")
    seed = data.draw(seeds, "seed")
    with case("haar_dwt", impl, device):
        x = layout(Rand(seed).normal(shape, dtype), name, device)
        want = ref.haar_dwt(wide(x))
        for threads, y in at_threads(lambda: hrops.haar_dwt(x, impl=impl)):
            assert y.dtype == dtype, f"{threads} threads: dtype {y.dtype}"
            assert_close(y, want, TOL[dtype], f"{threads} threads")


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_haar_idwt(impl, device, data):
    (n, c, h, w), out = _coefficients(data, impl, device)
    dtype = data.draw(dtypes(impl, device), "dtype")
    name = data.draw(layouts(4), "layout")
    seed = data.draw(seeds, "seed")
    with case("haar_idwt", impl, device):
        y = layout(Rand(seed).normal((n, 4 * c, h, w), dtype), name, device)
        full = out or (2 * h, 2 * w)
        packed = wide(y)
        want = ref.haar_idwt(packed[:, :c], packed[:, c:].unflatten(1, (c, 3)), *full)
        for threads, x in at_threads(lambda: hrops.haar_idwt(y, out, impl=impl)):
            assert x.dtype == dtype, f"{threads} threads: dtype {x.dtype}"
            assert_close(x, want, TOL[dtype], f"{threads} threads")


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_haar_idwt_bands(impl, device, data):
    (n, c, h, w), out = _coefficients(data, impl, device)
    dtype = data.draw(dtypes(impl, device), "dtype")
    low_layout = data.draw(layouts(4), "low layout")
    high_layout = data.draw(layouts(5), "high layout")
    seed = data.draw(seeds, "seed")
    with case("haar_idwt_bands", impl, device):
        rand = Rand(seed)
        low = layout(rand.normal((n, c, h, w), dtype), low_layout, device)
        high = layout(rand.normal((n, c, 3, h, w), dtype), high_layout, device)
        want = ref.haar_idwt(wide(low), wide(high), *(out or (2 * h, 2 * w)))
        for threads, x in at_threads(lambda: hrops.haar_idwt_bands(low, high, out, impl=impl)):
            assert x.dtype == dtype, f"{threads} threads: dtype {x.dtype}"
            assert_close(x, want, TOL[dtype], f"{threads} threads")


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("op", ["haar_dwt", "haar_idwt", "haar_idwt_bands"])
@given(data=st.data())
def test_haar_grads(impl, device, op, data):
    """The backward of each op runs the other op's kernel."""
    (n, c, h, w), out = _coefficients(data, impl, device)
    name = data.draw(layouts(4, expanded=False), "layout")
    seed = data.draw(seeds, "seed")
    full = out or (2 * h, 2 * w)
    rand = Rand(seed + 1)
    with case(f"{op}.grad", impl, device):
        if op == "haar_dwt":
            x = layout(rand.normal((n, c, *full)), name, device).requires_grad_()
            check_grads(lambda t: hrops.haar_dwt(t, impl=impl), ref.haar_dwt, [x],
                        TOL[torch.float64], seed)
        elif op == "haar_idwt":
            y = layout(rand.normal((n, 4 * c, h, w)), name, device).requires_grad_()
            check_grads(lambda t: hrops.haar_idwt(t, out, impl=impl),
                        lambda t: ref.haar_idwt(t[:, :c], t[:, c:].unflatten(1, (c, 3)), *full),
                        [y], TOL[torch.float64], seed)
        else:
            low = layout(rand.normal((n, c, h, w)), name, device).requires_grad_()
            high = rand.normal((n, c, 3, h, w)).to(device).requires_grad_()
            check_grads(lambda a, b: hrops.haar_idwt_bands(a, b, out, impl=impl),
                        lambda a, b: ref.haar_idwt(a, b, *full), [low, high],
                        TOL[torch.float64], seed, names=["low", "high"])
