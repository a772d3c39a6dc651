"""Every op under torch.autocast (hrops.ops._define.AUTOCAST_RULES): the dtype
it returns, its values against the reference run outside autocast on the
inputs its rule casts to, the mixed dtypes autocast produces (bfloat16
activations with float32 parameters), gradients in the parameters' dtypes,
and the rule registered at the dispatcher for direct calls and compiled
graphs."""
import pytest
import torch

import hrops
from hrops import _backends
from hrops.ops._define import autocast_rule
from impls import interpreted, kernel_impls
from patchmatch_cases import feature_maps

LOW = torch.bfloat16  # CPU autocast's dtype (CUDA's too when a case runs there)
# The documented rules: these reduce in float32, every other op with a
# floating-point input runs in the autocast dtype.
FLOAT32_OPS = {"region_avg_pool", "patchmatch_step", "patchmatch_warp"}


def _seg(n, h, w, regions=3):
    return torch.randint(0, regions, (n, h, w))


def _r(*shape):
    return torch.randn(*shape)


_SEG = _seg(2, 5, 6)

# name: (the op whose rule applies, inputs (the first is the activation, made
# bfloat16 in the mixed cases), the call of the public function).
CASES = {
    "haar_dwt": ("haar_dwt", lambda: [_r(2, 3, 6, 5)],
                 lambda a, impl: hrops.haar_dwt(*a, impl=impl)),
    "haar_idwt": ("haar_idwt_packed", lambda: [_r(2, 8, 3, 4)],
                  lambda a, impl: hrops.haar_idwt(*a, impl=impl)),
    "haar_idwt_bands": ("haar_idwt", lambda: [_r(2, 2, 3, 4), _r(2, 2, 3, 3, 4)],
                        lambda a, impl: hrops.haar_idwt_bands(*a, impl=impl)),
    "fused_bias_leaky_relu": ("fused_bias_leaky_relu", lambda: [_r(2, 5, 4, 3), _r(5)],
                              lambda a, impl: hrops.fused_bias_leaky_relu(*a, impl=impl)),
    "upfirdn2d": ("upfirdn2d", lambda: [_r(2, 3, 5, 6), _r(4, 4)],
                  lambda a, impl: hrops.upfirdn2d(*a, up=2, pad=(2, 1), impl=impl)),
    "modulated_dwconv2d": (
        "modulated_dwconv2d",
        lambda: [_r(2, 4, 6, 5), _r(2, 4), _r(4, 1, 3, 3), _r(6, 4, 1, 1), _r(6).abs(), _r(6),
                 _r(1, 1, 6, 5), _r(1)],
        lambda a, impl: hrops.modulated_dwconv2d(*a[:5], bias=a[5], noise=a[6], noise_weight=a[7],
                                                 negative_slope=0.2, impl=impl)),
    "modulated_idwt_upsample": ("modulated_idwt_upsample", lambda: [_r(2, 8, 3, 4), _r(2, 8)],
                                lambda a, impl: hrops.modulated_idwt_upsample(*a, impl=impl)),
    "region_avg_pool": ("region_avg_pool", lambda: [_r(2, 4, 5, 6)],
                        lambda a, impl: hrops.region_avg_pool(a[0], _SEG, 3, impl=impl)),
    "region_broadcast": ("region_broadcast", lambda: [_r(2, 3, 4)],
                         lambda a, impl: hrops.region_broadcast(a[0], _SEG, impl=impl)),
    "region_conv2d": ("region_conv_gather", lambda: [_r(2, 3, 4), _r(5, 4, 3, 3), _r(5)],
                      lambda a, impl: hrops.region_conv2d(a[0], _SEG, *a[1:], impl=impl)),
    "ace_modulate": ("ace_modulate", lambda: [_r(2, 3, 4, 5) for _ in range(5)] + [torch.rand(2)],
                     lambda a, impl: hrops.ace_modulate(*a, impl=impl)),
    "lstu_gates": ("lstu_gates",
                   lambda: [_r(2, 3, 4, 5), _r(2, 3, 4, 5), _r(2, 6, 4, 5), _r(2, 3, 4, 5)],
                   lambda a, impl: hrops.lstu_gates(*a, impl=impl)),
    "stu_reset": ("stu_reset", lambda: [_r(2, 3, 4, 5), _r(2, 3, 4, 5)],
                  lambda a, impl: hrops.stu_reset(*a, impl=impl)),
    "gru_update": ("gru_update", lambda: [_r(2, 3, 4, 5) for _ in range(3)],
                   lambda a, impl: hrops.gru_update(*a, impl=impl)),
    "conv_gru_pass": (
        "conv_gru_pass",
        lambda: [_r(2, 3, 4, 5), _r(2, 2, 4, 5), _r(6, 5, 3, 3) / 4, _r(6), _r(3, 5, 3, 3) / 4,
                 _r(3)],
        lambda a, impl: hrops.conv_gru_pass(*a, 1, impl=impl)),
    "patchmatch_step": ("patchmatch_step", lambda: list(feature_maps(k=3)),
                        lambda a, impl: hrops.patchmatch_step(*a, impl=impl)),
    "patchmatch_warp": (
        "patchmatch_warp", lambda: [*feature_maps(k=3)[:2], _r(2, 3, 6, 4), feature_maps(k=3)[2]],
        lambda a, impl: hrops.patchmatch_warp(*a, impl=impl)),
}


def _call(case, args, impl):
    return CASES[case][2](args, impl)


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _cast(args, dtype):
    return [a.to(dtype) if a.is_floating_point() else a for a in args]


# The kernels of each case's op (besides "ref"); the rest have "cpu" and "cuda".
_TRITON = ("cpu", "cuda", "triton")
SUPPORTED = {"haar_dwt": _TRITON, "haar_idwt": _TRITON, "haar_idwt_bands": _TRITON,
             "lstu_gates": _TRITON, "stu_reset": _TRITON, "gru_update": _TRITON,
             "conv_gru_pass": _TRITON, "modulated_dwconv2d": ("cpu", "triton")}


def _params(cases):
    params = []
    for case in sorted(cases):
        for p in [pytest.param("ref", "cpu", id="ref-cpu"),
                  *kernel_impls(SUPPORTED.get(case, ("cpu", "cuda")))]:
            params.append(pytest.param(case, *p.values, marks=p.marks, id=f"{case}-{p.id}"))
    return params


def _autocast_dtype(dtype, impl, device):
    if dtype == torch.bfloat16 and interpreted(impl, device):
        pytest.skip("the Triton interpreter has no bfloat16")
    return dtype


@pytest.mark.parametrize("case, impl, device", _params(CASES))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("mixed", [False, True], ids=["float32", "half-activation"])
def test_op_under_autocast_follows_its_rule(case, impl, device, dtype, mixed):
    low = _autocast_dtype(dtype, impl, device)
    op = CASES[case][0]
    rule = "float32" if op in FLOAT32_OPS else "lower_precision"
    assert autocast_rule(op) == rule
    args = [a.to(device) for a in CASES[case][1]()]
    if mixed:
        args[0] = args[0].to(low)
    with torch.autocast(device, dtype=low):
        out = _call(case, args, impl)
    want_dtype = low if rule == "lower_precision" else torch.float32
    expected = _call(case, _cast(_cast(args, want_dtype), torch.float32), "ref")
    for got, want in zip(out if isinstance(out, tuple) else (out,),
                         expected if isinstance(expected, tuple) else (expected,)):
        assert got.dtype == want_dtype, (case, got.dtype)
        scale = want.abs().max().item() if want.numel() else 1.0
        if rule == "float32":
            torch.testing.assert_close(got.float(), want, rtol=1e-5, atol=1e-5 * scale)
        else:  # half output rounding (and half intermediates in the ATen parts)
            torch.testing.assert_close(got.float(), want, rtol=3e-2, atol=3e-2 * scale)


@pytest.mark.parametrize("case, impl, device", _params(set(CASES) - {"patchmatch_step"}))
def test_gradients_under_autocast_keep_the_inputs_dtypes(case, impl, device):
    low = torch.float16 if interpreted(impl, device) else LOW
    args = [a.to(device) for a in CASES[case][1]()]
    args[0] = args[0].to(low)
    # Inputs without a gradient: upfirdn2d's FIR kernel, the warp's offsets.
    constant = {"upfirdn2d": 1, "patchmatch_warp": 3}.get(case)
    for i, a in enumerate(args):
        a.requires_grad_(i != constant)
    with torch.autocast(device, dtype=low):
        out = _first(_call(case, args, impl))
    out.float().square().sum().backward()
    for i, a in enumerate(args):
        if i != constant:
            assert a.grad is not None and a.grad.dtype == a.dtype, (case, i)
            assert torch.isfinite(a.grad).all()


def _ops():
    return sorted(n for n in dir(torch.ops.hrops) if not n.startswith("_")
                  and isinstance(getattr(torch.ops.hrops, n), torch._ops.OpOverloadPacket))


@pytest.mark.skipif(not _backends.HAS_CPU_KERNELS, reason="hrops._C not built")
def test_every_forward_op_registers_its_autocast_rule():
    has_kernel = torch._C._dispatch_has_kernel_for_dispatch_key
    # region_classes reads integer labels only: there is nothing to cast.
    assert [n for n in _ops() if autocast_rule(n) is None] == ["region_classes"]
    for name in _ops():
        for key in ("AutocastCPU", "AutocastCUDA"):
            assert has_kernel(f"hrops::{name}", key) == (name != "region_classes"), (name, key)
    backward = [n for n in dir(torch.ops.hrops) if n.startswith("_") and n.endswith("_backward")]
    assert backward and all(autocast_rule(n) is None for n in backward)


@pytest.mark.skipif(not _backends.HAS_CPU_KERNELS, reason="hrops._C not built")
def test_a_direct_op_call_is_cast_by_the_dispatcher():
    x, bias = _r(2, 5, 4, 3).to(LOW), _r(5)
    with torch.autocast("cpu", dtype=LOW):
        out = torch.ops.hrops.fused_bias_leaky_relu(x, bias, 0.2, 2 ** 0.5, "cpu")
        pooled = torch.ops.hrops.region_avg_pool(x, _seg(2, 4, 3), 3, "cpu")
    assert out.dtype == LOW and pooled.dtype == torch.float32
    with pytest.raises(RuntimeError):  # outside autocast the kernel's dtype check stands
        torch.ops.hrops.fused_bias_leaky_relu(x, bias, 0.2, 2 ** 0.5, "cpu")


@pytest.mark.compile
@pytest.mark.skipif(not _backends.HAS_CPU_KERNELS, reason="hrops._C not built")
def test_compiled_autocast_region_applies_the_rules():
    def f(x, bias, seg):
        y = hrops.fused_bias_leaky_relu(x, bias, impl="cpu")
        return y, hrops.region_avg_pool(y, seg, 3, impl="cpu")

    x, bias = _r(2, 5, 4, 3), _r(5)
    seg = _seg(2, 4, 3)
    with torch.autocast("cpu", dtype=LOW):
        eager = f(x, bias, seg)
        compiled = torch.compile(f, fullgraph=True, backend="aot_eager")(x, bias, seg)
    for e, c in zip(eager, compiled):
        assert e.dtype == c.dtype
        torch.testing.assert_close(c, e)
    assert eager[0].dtype == LOW and eager[1].dtype == torch.float32


def test_float64_does_not_mix_under_autocast():
    x = _r(2, 5, 4, 3).double()
    with torch.autocast("cpu", dtype=LOW), pytest.raises(ValueError, match="same dtype"):
        hrops.fused_bias_leaky_relu(x, _r(5))
