"""Recurrent-cell gating ops against hrops.ref: lstu_gates (tanh and relu),
stu_reset, stu_update / gru_update and the ConvGRU pass; random sizes,
pre-activation scales up to saturation, dtypes, an independent layout per
operand, 1 and 2 threads; float64 gradients."""
import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given

import hrops
from impls import interpreted, kernel_impls

from .harness import Rand, assert_close, at_threads, case, check_grads, layout, wide
from .strategies import dims, dtypes, layouts, seeds, size

IMPLS = kernel_impls()
# Saturated gates overflow exp to inf under the Triton interpreter (numpy warns; the result holds).
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp")
# tests/test_gates.py's tolerances: each output is one expression of a few
# inputs, half types computed in float32 and rounded once.
TOL = {torch.float32: dict(atol=2e-6, rtol=1e-5), torch.float64: dict(atol=1e-12, rtol=1e-12),
       torch.float16: dict(atol=2e-3, rtol=2e-3), torch.bfloat16: dict(atol=2e-2, rtol=2e-2)}
# The ConvGRU pass also rounds its convolutions to the dtype.
CONV_TOL = {torch.float32: dict(atol=1e-5, rtol=1e-4), torch.float64: dict(atol=1e-10, rtol=1e-10),
            torch.float16: dict(atol=1e-2, rtol=1e-2), torch.bfloat16: dict(atol=6e-2, rtol=6e-2)}

# op -> (operand count, index of the (N, 2C) operand or None, call)
GATES = {
    "lstu_gates": (4, 2, lambda impl, act: lambda *t: hrops.lstu_gates(*t, act, impl=impl)),
    "stu_reset": (2, None, lambda impl, act: lambda *t: hrops.stu_reset(*t, impl=impl)),
    "gru_update": (3, None, lambda impl, act: lambda *t: hrops.gru_update(*t, impl=impl)),
    "stu_update": (3, None, lambda impl, act: lambda *t: hrops.stu_update(*t, impl=impl)),
}
# Operands that are pre-activations (scaled up to saturate the gates).
PRE_ACTIVATIONS = {"lstu_gates": (2,), "stu_reset": (0,), "gru_update": (0, 2),
                   "stu_update": (0, 2)}


@st.composite
def gate_params(draw, grad=False, scaled=True):
    big = None if grad else 70
    return dict(shape=draw(dims([size(0, 3), size(0, 9, big), size(0, 13, big), size(0, 13, big)],
                                [(1, 2), (8, 16), (64, 128), (64, 128)] if scaled else None)),
                activation=draw(st.sampled_from(["tanh", "relu"])),
                pre_scale=draw(st.sampled_from([0.5, 2.0, 10.0, 60.0])),
                value_scale=draw(st.sampled_from([1.0, 50.0])), seed=draw(seeds))


def _gate_inputs(op, p, dtype, device, names):
    count, doubled, _ = GATES[op]
    n, c, h, w = p["shape"]
    rand = Rand(p["seed"])
    out = []
    for i, name in zip(range(count), names):
        shape = (n, 2 * c if i == doubled else c, h, w)
        scale = p["pre_scale"] if i in PRE_ACTIVATIONS[op] else p["value_scale"]
        out.append(layout(rand.normal(shape, dtype, scale), name, device))
    return out


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("op", list(GATES))
@given(data=st.data())
def test_gates(impl, device, op, data):
    p = data.draw(gate_params(scaled=not interpreted(impl, device)), "params")
    dtype = data.draw(dtypes(impl, device), "dtype")
    names = data.draw(st.lists(layouts(4), min_size=4, max_size=4), "layouts")
    call = GATES[op][2]
    with case(op, impl, device):
        args = _gate_inputs(op, p, dtype, device, names)
        want = call("ref", p["activation"])(*(wide(t) for t in args))
        want = want if isinstance(want, tuple) else (want,)
        for threads, got in at_threads(lambda: call(impl, p["activation"])(*args)):
            got = got if isinstance(got, tuple) else (got,)
            for i, (g, w) in enumerate(zip(got, want)):
                assert g.dtype == dtype, f"{threads} threads: output {i} dtype {g.dtype}"
                assert_close(g, w, TOL[dtype], f"{threads} threads, output {i}")


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("op", list(GATES))
@given(data=st.data())
def test_gates_grads(impl, device, op, data):
    p = data.draw(gate_params(True, not interpreted(impl, device)), "params")
    names = data.draw(st.lists(layouts(4, expanded=False), min_size=4, max_size=4), "layouts")
    call = GATES[op][2]
    with case(f"{op}.grad", impl, device):
        leaves = [t.requires_grad_() for t in _gate_inputs(op, p, torch.float64, device, names)]
        check_grads(call(impl, p["activation"]), call("ref", p["activation"]), leaves,
                    TOL[torch.float64], p["seed"])


# --- conv_gru_pass ------------------------------------------------------------------------------

@st.composite
def conv_gru_params(draw, grad=False, scaled=True):
    """ATen cannot convolve an empty image or produce zero channels, so C,
    H, W >= 1; the gates need h's size back, so the padding is 'same'."""
    big = None if grad else 24
    n, c, cx, h, w = draw(dims([size(0, 2), size(1, 6, big), size(0, 6, big), size(1, 9, big),
                                size(1, 9, big)],
                               [(1, 2), (4, 8), (4, 8), (48, 64), (48, 64)] if scaled else None))
    return dict(n=n, c=c, cx=cx, h=h, w=w,
                kernel=(draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 3, 5]))),
                bias=draw(st.booleans()), seed=draw(seeds))


def _conv_gru_inputs(p, dtype, device, names):
    rand = Rand(p["seed"])
    n, c, cx = p["n"], p["c"], p["cx"]
    kh, kw = p["kernel"]
    fan_in = ((c + cx) * kh * kw) ** -0.5
    t = dict(h=layout(rand.normal((n, c, p["h"], p["w"]), dtype), names[0], device),
             x=layout(rand.normal((n, cx, p["h"], p["w"]), dtype), names[1], device),
             weight_zr=rand.normal((2 * c, c + cx, kh, kw), dtype, fan_in).to(device),
             bias_zr=rand.normal((2 * c,), dtype).to(device) if p["bias"] else None,
             weight_q=rand.normal((c, c + cx, kh, kw), dtype, fan_in).to(device),
             bias_q=rand.normal((c,), dtype).to(device) if p["bias"] else None)
    return t, (kh // 2, kw // 2)


def _conv_gru(impl, padding, names):
    def run(*leaves):
        t = dict(zip(names, leaves))
        return hrops.conv_gru_pass(t["h"], t["x"], t["weight_zr"], t.get("bias_zr"),
                                   t["weight_q"], t.get("bias_q"), padding, impl=impl)
    return run


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_conv_gru_pass(impl, device, data):
    p = data.draw(conv_gru_params(scaled=not interpreted(impl, device)), "params")
    dtype = data.draw(dtypes(impl, device), "dtype")
    names = (data.draw(layouts(4), "h layout"), data.draw(layouts(4), "x layout"))
    with case("conv_gru_pass", impl, device):
        t, padding = _conv_gru_inputs(p, dtype, device, names)
        keys = [k for k, v in t.items() if v is not None]
        args = [t[k] for k in keys]
        want = _conv_gru("ref", padding, keys)(*(wide(a) for a in args))
        for threads, y in at_threads(lambda: _conv_gru(impl, padding, keys)(*args)):
            assert y.dtype == dtype, f"{threads} threads: dtype {y.dtype}"
            assert_close(y, want, CONV_TOL[dtype], f"{threads} threads")


@pytest.mark.parametrize("impl,device", IMPLS)
@given(data=st.data())
def test_conv_gru_pass_grads(impl, device, data):
    p = data.draw(conv_gru_params(True, not interpreted(impl, device)), "params")
    names = (data.draw(layouts(4, expanded=False), "h layout"),
             data.draw(layouts(4, expanded=False), "x layout"))
    with case("conv_gru_pass.grad", impl, device):
        t, padding = _conv_gru_inputs(p, torch.float64, device, names)
        keys = [k for k, v in t.items() if v is not None]
        check_grads(_conv_gru(impl, padding, keys), _conv_gru("ref", padding, keys),
                    [t[k].requires_grad_() for k in keys], CONV_TOL[torch.float64], p["seed"],
                    names=keys)
