"""StyleGAN2's ops against hrops.ref: fused bias + leaky ReLU (any rank,
slopes, scales), upfirdn2d (kernel sizes, up/down factors, positive and
negative pads) and the modulated convolution (up/down sampling, blur
kernels, demodulation); random sizes, dtypes, layouts, 1 and 2 threads;
float64 gradients."""
import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import assume, given

import hrops
from impls import kernel_impls

from .harness import Rand, assert_close, at_threads, case, check_grads, layout, wide
from .strategies import dims, dtypes, layouts, seeds, size

IMPLS = kernel_impls(("cpu", "cuda"))
# tests/test_fused_bias_leaky_relu.py's tolerances: one rounding of one value.
ACT_TOL = {torch.float32: dict(atol=1e-6, rtol=1e-6),
           torch.float64: dict(atol=1e-12, rtol=1e-12),
           torch.float16: dict(atol=2e-3, rtol=2e-3),
           torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2)}
# tests/test_upfirdn2d.py's tolerances (sums of kh * kw taps).
FIR_TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-12, rtol=1e-12),
           torch.float16: dict(atol=4e-3, rtol=4e-3), torch.bfloat16: dict(atol=3e-2, rtol=3e-2)}
# The ATen convolutions of the kernel path and the reference's grouped one
# sum in different orders (tests/test_modulated_conv2d.py: 1e-5 / 1e-4 in
# float32); half types round the convolution inputs and outputs.
CONV_TOL = {torch.float32: dict(atol=1e-5, rtol=1e-4), torch.float64: dict(atol=1e-10, rtol=1e-10),
            torch.float16: dict(atol=1e-2, rtol=1e-2), torch.bfloat16: dict(atol=6e-2, rtol=6e-2)}


# --- fused_bias_leaky_relu ------------------------------------------------------------------

# Large shapes per rank (over 2 * 64Ki elements).
LARGE_ACT = {2: [(256, 512), (512, 1024)], 3: [(1, 2), (16, 32), (4096, 8192)],
             4: [(1, 2), (8, 16), (64, 128), (64, 128)],
             5: [(1, 2), (8, 16), (16, 32), (16, 32), (2, 4)]}


@st.composite
def act_params(draw, grad=False):
    big = None if grad else 70
    ndim = draw(st.integers(2, 5))
    shape = draw(dims([size(0, 3), size(0, 17, big)] + [size(0, 9, big)] * (ndim - 2),
                      LARGE_ACT[ndim]))
    return dict(shape=shape, bias=draw(st.booleans()),
                negative_slope=draw(st.sampled_from([0.0, 0.2]) | st.floats(0, 2)),
                scale=draw(st.sampled_from([2 ** 0.5, 1.0]) | st.floats(1e-3, 10)),
                seed=draw(seeds))


def _act_inputs(p, dtype, device, x_layout):
    rand = Rand(p["seed"])
    x = layout(rand.normal(p["shape"], dtype), x_layout, device)
    bias = rand.normal(p["shape"][1:2], dtype).to(device) if p["bias"] else None
    return x, bias


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_fused_bias_leaky_relu(impl, device, data):
    p = data.draw(act_params(), "params")
    dtype = data.draw(dtypes(impl, device), "dtype")
    x_layout = data.draw(layouts(len(p["shape"])), "x layout")
    with case("fused_bias_leaky_relu", impl, device):
        x, bias = _act_inputs(p, dtype, device, x_layout)
        args = (p["negative_slope"], p["scale"])
        want = hrops.fused_bias_leaky_relu(wide(x), wide(bias), *args, impl="ref")
        for threads, y in at_threads(
                lambda: hrops.fused_bias_leaky_relu(x, bias, *args, impl=impl)):
            assert y.dtype == dtype, f"{threads} threads: dtype {y.dtype}"
            assert_close(y, want, ACT_TOL[dtype], f"{threads} threads")


def _act(impl, p):
    return lambda x, bias=None: hrops.fused_bias_leaky_relu(x, bias, p["negative_slope"],
                                                            p["scale"], impl=impl)


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_fused_bias_leaky_relu_grads(impl, device, data):
    p = data.draw(act_params(grad=True), "params")
    x_layout = data.draw(layouts(len(p["shape"]), expanded=False), "x layout")
    with case("fused_bias_leaky_relu.grad", impl, device):
        leaves = [t.requires_grad_() for t in _act_inputs(p, torch.float64, device, x_layout)
                  if t is not None]
        check_grads(_act(impl, p), _act("ref", p), leaves, ACT_TOL[torch.float64], p["seed"],
                    names=["x", "bias"])


# --- upfirdn2d ------------------------------------------------------------------------------

def _factor(draw, hi):
    """An int or an (x, y) pair, as the op takes either."""
    return draw(st.integers(1, hi) | st.tuples(st.integers(1, hi), st.integers(1, hi)))


@st.composite
def fir_params(draw, grad=False):
    big = None if grad else 40
    n, c, h, w = draw(dims([size(0, 3), size(0, 5), size(0, 13, big), size(0, 13, big)],
                           [(1, 2), (8, 16), (48, 96), (48, 96)]))
    p = dict(n=n, c=c, h=h, w=w, kh=draw(st.integers(1, 5)), kw=draw(st.integers(1, 5)),
             kernel=draw(st.sampled_from(["random", "separable", "blur"])),
             kernel_float64=draw(st.booleans()), up=_factor(draw, 4), down=_factor(draw, 4),
             pad=draw(st.tuples(*[st.integers(-3, 4)] * 2) | st.tuples(*[st.integers(-3, 4)] * 4)),
             seed=draw(seeds))
    (up_x, up_y), _ = _pairs(p)
    x0, x1, y0, y1 = p["pad"] * 2 if len(p["pad"]) == 2 else p["pad"]
    assume(p["h"] * up_y + y0 + y1 >= p["kh"] and p["w"] * up_x + x0 + x1 >= p["kw"])
    return p


def _pairs(p):
    return tuple((v, v) if isinstance(v, int) else v for v in (p["up"], p["down"]))


def _fir_inputs(p, dtype, device, x_layout, kernel_layout="contiguous"):
    rand = Rand(p["seed"])
    x = layout(rand.normal((p["n"], p["c"], p["h"], p["w"]), dtype), x_layout, device)
    kh, kw = p["kh"], p["kw"]
    if p["kernel"] == "random":
        kernel = rand.normal((kh, kw))
    elif p["kernel"] == "separable":  # the CPU kernel's fast path
        kernel = torch.outer(rand.normal((kh,)), rand.normal((kw,)))
    else:  # binomial taps summing to 1, like StyleGAN2's blur
        kernel = torch.outer(*(torch.tensor([math.comb(t - 1, i) for i in range(t)],
                                            dtype=torch.float64) for t in (kh, kw)))
        kernel = kernel / kernel.sum()
    kernel = kernel.to(torch.float64 if p["kernel_float64"] else dtype)
    return x, layout(kernel, kernel_layout, device)


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_upfirdn2d(impl, device, data):
    p = data.draw(fir_params(), "params")
    dtype = data.draw(dtypes(impl, device), "dtype")
    x_layout = data.draw(layouts(4), "x layout")
    kernel_layout = data.draw(layouts(2), "kernel layout")
    with case("upfirdn2d", impl, device):
        x, kernel = _fir_inputs(p, dtype, device, x_layout, kernel_layout)
        args = (p["up"], p["down"], p["pad"])
        # The kernel rounds the filter to x's dtype: so does the reference's input.
        want = hrops.upfirdn2d(wide(x), wide(kernel.to(dtype)), *args, impl="ref")
        for threads, y in at_threads(lambda: hrops.upfirdn2d(x, kernel, *args, impl=impl)):
            assert y.dtype == dtype, f"{threads} threads: dtype {y.dtype}"
            assert_close(y, want, FIR_TOL[dtype], f"{threads} threads")


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_upfirdn2d_grads(impl, device, data):
    p = data.draw(fir_params(grad=True), "params")
    x_layout = data.draw(layouts(4, expanded=False), "x layout")
    with case("upfirdn2d.grad", impl, device):
        x, kernel = _fir_inputs(p, torch.float64, device, x_layout)
        args = (p["up"], p["down"], p["pad"])
        check_grads(lambda t: hrops.upfirdn2d(t, kernel, *args, impl=impl),
                    lambda t: hrops.upfirdn2d(t, wide(kernel), *args, impl="ref"),
                    [x.requires_grad_()], FIR_TOL[torch.float64], p["seed"], names=["x"])


# --- modulated_conv2d -----------------------------------------------------------------------

@st.composite
def conv_params(draw, grad=False):
    """The reference's grouped convolution needs N >= 1; down-sampling a
    single row or column leaves nothing for the stride-2 convolution."""
    big = None if grad else 24
    n, cin, cout, h, w = draw(dims([size(1, 3), size(1, 8, big), size(1, 8, big),
                                    size(1, 13, big), size(1, 13, big)],
                                   [(1, 2), (8, 16), (8, 16), (32, 64), (32, 64)]))
    p = dict(n=n, cin=cin, cout=cout, h=h, w=w,
             k=draw(st.sampled_from([1, 3, 5])),
             updown=draw(st.sampled_from([(1, 1), (2, 1), (1, 2)])),
             demodulate=draw(st.booleans()),
             blur_kernel=draw(st.sampled_from([(1, 3, 3, 1), (1, 2, 1), (1, 1)])),
             weight_5d=draw(st.booleans()), seed=draw(seeds))
    assume(p["updown"][1] == 1 or min(p["h"], p["w"]) >= 2)
    return p


def _conv_inputs(p, dtype, device, names=("contiguous",) * 3):
    """x, weight and style in the layouts `names`."""
    rand = Rand(p["seed"])
    cin, k = p["cin"], p["k"]
    x = layout(rand.normal((p["n"], cin, p["h"], p["w"]), dtype), names[0], device)
    weight = layout(rand.normal((p["cout"], cin, k, k), dtype, (cin * k * k) ** -0.5), names[1],
                    device)
    style = rand.normal((p["n"], cin)) + 1  # rosinality's EqualLinear has bias 1
    style = layout(style.to(dtype), names[2], device)
    return x, (weight[None] if p["weight_5d"] else weight), style


def _conv(impl, p):
    up, down = p["updown"]
    return lambda x, weight, style: hrops.modulated_conv2d(
        x, weight, style, p["demodulate"], up, down, p["blur_kernel"], impl=impl)


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_modulated_conv2d(impl, device, data):
    p = data.draw(conv_params(), "params")
    dtype = data.draw(dtypes(impl, device), "dtype")
    names = data.draw(st.tuples(layouts(4), layouts(4), layouts(2)), "layouts of x, weight, style")
    with case("modulated_conv2d", impl, device):
        inputs = _conv_inputs(p, dtype, device, names)
        want = _conv("ref", p)(*(wide(t) for t in inputs))
        for threads, y in at_threads(lambda: _conv(impl, p)(*inputs)):
            assert y.dtype == dtype, f"{threads} threads: dtype {y.dtype}"
            assert_close(y, want, CONV_TOL[dtype], f"{threads} threads")


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_modulated_conv2d_grads(impl, device, data):
    p = data.draw(conv_params(grad=True), "params")
    names = data.draw(st.tuples(*(layouts(d, expanded=False) for d in (4, 4, 2))),
                      "layouts of x, weight, style")
    with case("modulated_conv2d.grad", impl, device):
        leaves = [t.requires_grad_() for t in _conv_inputs(p, torch.float64, device, names)]
        check_grads(_conv(impl, p), _conv("ref", p), leaves, CONV_TOL[torch.float64], p["seed"],
                    names=["x", "weight", "style"])
