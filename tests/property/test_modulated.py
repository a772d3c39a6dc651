"""MobileStyleGAN's fused ops against hrops.ref: the modulated
depthwise-separable convolution (kernel sizes, any padding, demodulation,
the StyledConv2d epilogue) and the modulated IDWT upsampling; random sizes,
dtypes, layouts, 1 and 2 threads; gradients."""
import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given

import hrops
from impls import interpreted, kernel_impls

from .harness import Rand, assert_close, at_threads, case, check_grads, layout, wide
from .strategies import dims, dtypes, layouts, seeds, size

DW_IMPLS = kernel_impls(("cpu", "triton"))
IDWT_IMPLS = kernel_impls(("cpu", "cuda"))
# tests/test_modulated_ops.py's tolerances (Cin-term sums; half types take
# the pointwise GEMM in half on some paths).
DW_TOL = {torch.float32: dict(atol=1e-4, rtol=1e-4), torch.float64: dict(atol=1e-10, rtol=1e-10),
          torch.float16: dict(atol=1e-2, rtol=1e-2), torch.bfloat16: dict(atol=6e-2, rtol=6e-2)}
# A four-term butterfly of products.
IDWT_TOL = {torch.float32: dict(atol=1e-6, rtol=1e-6),
            torch.float64: dict(atol=1e-12, rtol=1e-12),
            torch.float16: dict(atol=2e-3, rtol=2e-3),
            torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2)}


@st.composite
def dwconv_params(draw, grad=False, scaled=True):
    """Sizes, kernel, padding and epilogue of one modulated_dwconv2d call.
    Unless `scaled`, small sizes only, and no k = 7 for gradients: the
    Triton interpreter takes about a second per 64-pixel block at k = 7.
    The reference cannot convolve an empty image or produce zero output
    channels, so Cin, Cout, H, W >= 1 (N = 0 covers empty inputs)."""
    big = 40 if scaled and not grad else None
    large = [(1, 2), (8, 24), (8, 24), (48, 96), (48, 96)] if scaled else None
    hw = 13 if scaled else 6 if grad else 9
    n, cin, cout, h, w = draw(dims([size(0, 3 if scaled else 2), size(1, 17, big),
                                    size(1, 17, big), size(1, hw, big), size(1, hw, big)], large))
    p = dict(n=n, cin=cin, cout=cout, h=h, w=w,
             k=draw(st.sampled_from([1, 3, 5] if grad and not scaled else [1, 3, 5, 7])))
    p["padding"] = draw(st.integers(0, p["k"] + 1))
    assume(min(p["h"], p["w"]) + 2 * p["padding"] >= p["k"])
    p["demod"] = draw(st.booleans())
    p["pw_2d"] = draw(st.booleans())  # weight_pw as (Cout, Cin)
    p["bias"] = draw(st.booleans())
    p["noise"] = draw(st.sampled_from([None, (1, 1), ("N", 1), (1,)]))  # batch/channel dims
    p["noise_weight_shape"] = draw(st.sampled_from([(1,), (), (1, 1)]))
    p["negative_slope"] = draw(st.none() | st.sampled_from([0.0, 0.2]) | st.floats(0, 1))
    p["seed"] = draw(seeds)
    return p


def _dwconv_inputs(p, dtype, device, names=("contiguous",) * 4):
    """The call's tensors by argument name (None where absent), x,
    modulation, weight_dw and weight_pw in the layouts `names`, and the
    call's other arguments."""
    n, cin, cout, k = p["n"], p["cin"], p["cout"], p["k"]
    ho, wo = (s + 2 * p["padding"] - k + 1 for s in (p["h"], p["w"]))
    rand = Rand(p["seed"])
    pw_shape = (cout, cin) if p["pw_2d"] else (cout, cin, 1, 1)
    t = dict(x=layout(rand.normal((n, cin, p["h"], p["w"]), dtype), names[0], device),
             modulation=layout(rand.normal((n, cin), dtype), names[1], device),
             weight_dw=layout(rand.normal((cin, 1, k, k), dtype, 1 / k), names[2], device),
             weight_pw=layout(rand.normal(pw_shape, dtype, cin ** -0.5), names[3], device),
             demod=rand.uniform((cout,), 0.5, 1.5, dtype).to(device) if p["demod"] else None,
             bias=rand.normal((cout,), dtype).to(device) if p["bias"] else None,
             noise=None, noise_weight=None)
    if p["noise"] is not None:
        lead = tuple(n if d == "N" else d for d in p["noise"])
        t["noise"] = rand.normal((*lead, ho, wo), dtype).to(device)
        t["noise_weight"] = rand.normal(p["noise_weight_shape"], dtype).to(device)
    return t, dict(padding=p["padding"], negative_slope=p["negative_slope"])


def _dwconv_ref(tensors, static):
    """hrops.ref in float64. ATen cannot convolve an empty (H or W = 0)
    image, so there the padding is applied first (the same zeros)."""
    tensors = {k: wide(v) for k, v in tensors.items()}
    if 0 in tensors["x"].shape[2:]:
        tensors["x"] = F.pad(tensors["x"], (static["padding"],) * 4)
        static = {**static, "padding": 0}
    return hrops.modulated_dwconv2d(**tensors, **static, impl="ref")


def _dw_layouts(p, expanded=True):
    return st.tuples(layouts(4, expanded), layouts(2, expanded), layouts(4, expanded),
                     layouts(2 if p["pw_2d"] else 4, expanded))


@pytest.mark.parametrize("impl,device", DW_IMPLS)
@given(data=st.data())
def test_modulated_dwconv2d(impl, device, data):
    p = data.draw(dwconv_params(scaled=not interpreted(impl, device)), "params")
    dtype = data.draw(dtypes(impl, device), "dtype")
    names = data.draw(_dw_layouts(p), "layouts of x, modulation, weight_dw, weight_pw")
    with case("modulated_dwconv2d", impl, device):
        tensors, static = _dwconv_inputs(p, dtype, device, names)
        want = _dwconv_ref(tensors, static)
        for threads, y in at_threads(lambda: hrops.modulated_dwconv2d(**tensors, **static,
                                                                      impl=impl)):
            assert y.dtype == dtype, f"{threads} threads: dtype {y.dtype}"
            assert_close(y, want, DW_TOL[dtype], f"{threads} threads")


def _dwconv_grads(impl, device, p, names, threads):
    """float64 gradients of every tensor argument."""
    tensors, static = _dwconv_inputs(p, torch.float64, device, names)
    args = [k for k, v in tensors.items() if v is not None]

    def call(fn):
        return lambda *leaves: fn({**tensors, **dict(zip(args, leaves))}, static)

    def kernel(ts, other):
        return hrops.modulated_dwconv2d(**ts, **other, impl=impl)

    check_grads(call(kernel), call(_dwconv_ref), [tensors[k].requires_grad_() for k in args],
                DW_TOL[torch.float64], p["seed"], threads, args)


@pytest.mark.parametrize("impl,device", DW_IMPLS)
@given(data=st.data())
def test_modulated_dwconv2d_grads(impl, device, data):
    p = data.draw(dwconv_params(True, not interpreted(impl, device)), "params")
    names = data.draw(_dw_layouts(p, expanded=False),
                      "layouts of x, modulation, weight_dw, weight_pw")
    with case("modulated_dwconv2d.grad", impl, device):
        _dwconv_grads(impl, device, p, names, (1, 2))


@st.composite
def idwt_params(draw, grad=False):
    big = None if grad else 40
    n, c, h, w = draw(dims([size(0, 3), size(0, 8, big), size(0, 13, big), size(0, 13, big)],
                           [(1, 2), (4, 8), (48, 96), (48, 96)]))
    return dict(n=n, c=c, h=h, w=w, seed=draw(seeds))


def _idwt_inputs(p, dtype, device, x_layout, m_layout):
    rand = Rand(p["seed"])
    x = layout(rand.normal((p["n"], 4 * p["c"], p["h"], p["w"]), dtype), x_layout, device)
    m = layout(rand.normal((p["n"], 4 * p["c"]), dtype), m_layout, device)
    return x, m


@pytest.mark.parametrize("impl,device", IDWT_IMPLS)
@given(data=st.data())
def test_modulated_idwt_upsample(impl, device, data):
    p = data.draw(idwt_params(), "params")
    dtype = data.draw(dtypes(impl, device), "dtype")
    x_layout = data.draw(layouts(4), "x layout")
    m_layout = data.draw(layouts(2), "modulation layout")
    with case("modulated_idwt_upsample", impl, device):
        x, m = _idwt_inputs(p, dtype, device, x_layout, m_layout)
        want = hrops.modulated_idwt_upsample(wide(x), wide(m), impl="ref")
        for threads, y in at_threads(lambda: hrops.modulated_idwt_upsample(x, m, impl=impl)):
            assert y.dtype == dtype, f"{threads} threads: dtype {y.dtype}"
            assert_close(y, want, IDWT_TOL[dtype], f"{threads} threads")


@pytest.mark.parametrize("impl,device", IDWT_IMPLS)
@given(data=st.data())
def test_modulated_idwt_upsample_grads(impl, device, data):
    p = data.draw(idwt_params(grad=True), "params")
    x_layout = data.draw(layouts(4, expanded=False), "x layout")
    with case("modulated_idwt_upsample.grad", impl, device):
        x, m = (t.requires_grad_() for t in _idwt_inputs(p, torch.float64, device, x_layout,
                                                          "contiguous"))
        check_grads(lambda a, b: hrops.modulated_idwt_upsample(a, b, impl=impl),
                    lambda a, b: hrops.modulated_idwt_upsample(a, b, impl="ref"), [x, m],
                    IDWT_TOL[torch.float64], p["seed"], names=["x", "modulation"])
