"""Fused bias + leaky ReLU: every kernel against the reference (and the
reference against the unfused definition), layouts, dtypes, gradients of
first and second order, nothing but the output saved, opcheck, compile, errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hrops
from hrops import ref
from impls import kernel_impls

IMPLS = [p for p in kernel_impls() if p.values[0] != "triton"]
SHAPES = [(4, 512), (2, 5, 7, 9), (2, 3, 5), (1, 1, 1, 1), (3, 4, 1, 6), (0, 3, 4, 4),
          (2, 0, 3, 3)]
TOL = {torch.float32: dict(atol=1e-6, rtol=1e-6), torch.float64: dict(atol=1e-12, rtol=1e-12),
       torch.float16: dict(atol=2e-3, rtol=2e-3), torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2)}


def _layouts(x):
    """The same values as contiguous, (channels_last for 4-D) and a strided view."""
    out = {"contiguous": x}
    if x.dim() == 4:
        out["channels_last"] = x.contiguous(memory_format=torch.channels_last)
    wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
    wide[..., ::2] = x
    out["strided"] = wide[..., ::2]
    return out


def test_ref_is_the_definition():
    x, b = torch.randn(2, 3, 4, 5, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    v = x + b[None, :, None, None]
    expected = torch.where(v > 0, v, 0.2 * v) * 2 ** 0.5
    torch.testing.assert_close(ref.fused_bias_leaky_relu(x, b), expected)
    torch.testing.assert_close(ref.fused_bias_leaky_relu(x, None, 0.1, 3.0),
                               F.leaky_relu(x, 0.1) * 3.0)


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_matches_ref(impl, device, shape, with_bias):
    for dtype, tol in TOL.items():
        x = torch.randn(shape, dtype=torch.float64)
        b = torch.randn(shape[1], dtype=torch.float64) if with_bias else None
        expected = ref.fused_bias_leaky_relu(x, b, 0.2, 2 ** 0.5).to(dtype)
        b_d = b.to(dtype).to(device) if with_bias else None
        for layout, xl in _layouts(x.to(dtype)).items():
            y = hrops.fused_bias_leaky_relu(xl.to(device), b_d, impl=impl)
            assert y.shape == x.shape and y.dtype == dtype, layout
            torch.testing.assert_close(y.cpu(), expected, **tol, msg=lambda m: f"{layout}: {m}")


@pytest.mark.parametrize("impl,device", IMPLS)
def test_fp32_bitwise_equal_to_unfused(impl, device):
    # Same operation order as leaky_relu(x + b) * scale: identical fp32 results.
    x, b = torch.randn(3, 8, 16, 16, device=device), torch.randn(8, device=device)
    for slope, scale in ((0.2, 2 ** 0.5), (0.0, 1.0), (0.01, 0.5)):
        y = hrops.fused_bias_leaky_relu(x, b, slope, scale, impl=impl)
        assert torch.equal(y, ref.fused_bias_leaky_relu(x, b, slope, scale))


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("shape", [(3, 6), (2, 3, 4, 5), (2, 3, 5)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_gradcheck_and_gradgradcheck(impl, device, shape, with_bias):
    x = torch.randn(shape, dtype=torch.float64, device=device, requires_grad=True)
    args = (x,)
    if with_bias:
        args += (torch.randn(shape[1], dtype=torch.float64, device=device, requires_grad=True),)

    def fn(x, b=None):
        return hrops.fused_bias_leaky_relu(x, b, 0.2, 2 ** 0.5, impl=impl)
    assert torch.autograd.gradcheck(fn, args)
    assert torch.autograd.gradgradcheck(fn, args)


@pytest.mark.parametrize("impl,device", IMPLS)
def test_gradgradcheck_channels_last(impl, device):
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, device=device)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    b = torch.randn(3, dtype=torch.float64, device=device, requires_grad=True)
    fn = lambda x, b: hrops.fused_bias_leaky_relu(x, b, 0.1, 1.7, impl=impl)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_gradients_match_ref(impl, device, dtype):
    x64 = torch.randn(2, 6, 9, 7, dtype=torch.float64)
    b64, g64 = torch.randn(6, dtype=torch.float64), torch.randn(2, 6, 9, 7, dtype=torch.float64)
    x = x64.to(dtype).to(device).requires_grad_()
    b = b64.to(dtype).to(device).requires_grad_()
    y = hrops.fused_bias_leaky_relu(x, b, impl=impl)
    gx, gb = torch.autograd.grad(y, (x, b), g64.to(dtype).to(device))
    xr, br = x64.to(dtype).double().requires_grad_(), b64.to(dtype).double().requires_grad_()
    gx_ref, gb_ref = torch.autograd.grad(ref.fused_bias_leaky_relu(xr, br), (xr, br),
                                         g64.to(dtype).double())
    tol = TOL[dtype] if dtype != torch.float32 else dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx.cpu(), gx_ref.to(dtype), **tol)
    torch.testing.assert_close(gb.cpu(), gb_ref.to(dtype), **tol)


@pytest.mark.parametrize("impl,device", IMPLS)
def test_second_order_matches_ref(impl, device):
    # The R1-style pattern: a penalty on input gradients, differentiated again.
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64, device=device, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, device=device, requires_grad=True)
    w = torch.randn(2, 4, 5, 5, dtype=torch.float64, device=device)

    def penalty(fn):
        y = fn(x, b)
        gx, gb = torch.autograd.grad((y * y * w).sum(), (x, b), create_graph=True)
        return torch.autograd.grad(gx.square().sum() + gb.square().sum(), (x, b))
    got = penalty(lambda x, b: hrops.fused_bias_leaky_relu(x, b, impl=impl))
    want = penalty(lambda x, b: ref.fused_bias_leaky_relu(x, b))
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize("impl,device", IMPLS)
def test_only_the_output_is_saved(impl, device):
    x = torch.randn(2, 3, 8, 8, device=device, requires_grad=True)
    b = torch.randn(3, device=device, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = hrops.fused_bias_leaky_relu(x, b, impl=impl)
    assert len(saved) == 1 and saved[0].untyped_storage().data_ptr() == y.untyped_storage().data_ptr()


def test_auto_takes_the_reference_for_small_cpu_tensors():
    """Below the break-even size "auto" runs the reference (plain autograd
    nodes), above it and with impl="cpu" the kernel (the custom op's node)."""
    def node(x, b, impl="auto"):
        return type(hrops.fused_bias_leaky_relu(x, b, impl=impl).grad_fn).__name__

    b = torch.randn(512, requires_grad=True)
    small, large = torch.randn(4, 512), torch.randn(4, 512, 8, 8)
    assert node(small, b) == "MulBackward0" and node(small, b, "cpu") != "MulBackward0"
    assert node(large, b) != "MulBackward0"
    with torch.no_grad():  # without autograd the kernel wins from 16384 elements
        mid = torch.randn(4, 512, 4, 2)
        got = hrops.fused_bias_leaky_relu(mid, b)
    torch.testing.assert_close(got, ref.fused_bias_leaky_relu(mid, b.detach(), 0.2, 2 ** 0.5))
    torch.testing.assert_close(hrops.fused_bias_leaky_relu(small, b),
                               ref.fused_bias_leaky_relu(small, b, 0.2, 2 ** 0.5))


@pytest.mark.parametrize("impl,device", IMPLS)
def test_opcheck(impl, device):
    op = torch.ops.hrops.fused_bias_leaky_relu.default
    bwd = torch.ops.hrops._fused_bias_leaky_relu_backward.default
    x = torch.randn(2, 3, 5, 4, device=device, requires_grad=True)
    b = torch.randn(3, device=device, requires_grad=True)
    torch.library.opcheck(op, (x, b, 0.2, 2 ** 0.5, impl))
    torch.library.opcheck(op, (x, None, 0.2, 2 ** 0.5, impl))
    torch.library.opcheck(op, (x.contiguous(memory_format=torch.channels_last), b, 0.2, 1.0, impl))
    torch.library.opcheck(op, (torch.randn(4, 3, device=device, requires_grad=True), b, 0.2, 1.0,
                               impl))
    torch.library.opcheck(op, (x.detach()[:0], b.detach(), 0.2, 1.0, impl))
    out = hrops.fused_bias_leaky_relu(x.detach(), b.detach(), impl=impl)
    g = torch.randn_like(out, requires_grad=True)
    torch.library.opcheck(bwd, (g, out, None, 0.2, 2 ** 0.5, True, impl))
    torch.library.opcheck(bwd, (g, out, b, 0.2, 2 ** 0.5, False, impl))


@pytest.mark.compile
def test_compile_fullgraph():
    torch._dynamo.reset()

    def fn(x, b):
        return hrops.fused_bias_leaky_relu(x * 2, b).sum()

    x = torch.randn(2, 3, 6, 5, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager", dynamic=False)
    out = compiled(x, b)
    got = torch.autograd.grad(out, (x, b))
    want = torch.autograd.grad(fn(x, b), (x, b))
    torch.testing.assert_close(out, fn(x, b))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("impl", ["ref", "cpu"])
@pytest.mark.parametrize("kwargs,expected", [
    (dict(negative_slope=np.float64(0.1), scale=torch.tensor(2.0, dtype=torch.float64)),
     dict(negative_slope=0.1, scale=2.0)),
    (dict(negative_slope=0, scale=np.int64(2)), dict(negative_slope=0.0, scale=2.0)),
    (dict(negative_slope=float("nan")), "negative_slope must be a real number >= 0, got nan"),
    (dict(scale=float("nan")), "scale must be a real number > 0, got nan"),
    (dict(negative_slope=True), "negative_slope must be a real number >= 0, got True"),
    (dict(scale="2"), "scale must be a real number > 0, got '2'"),
    (dict(negative_slope=None), "negative_slope must be a real number >= 0, got None"),
    (dict(scale=torch.ones(2)), r"scale must be a real number > 0, got a tensor of shape \(2,\)"),
    (dict(negative_slope=torch.tensor(0.2, requires_grad=True)),
     "negative_slope must be a real number; got a tensor that requires grad"),
])
def test_real_arguments(impl, kwargs, expected):
    """NumPy numbers and 0-d tensors count as Python ones; NaN, a bool, a
    non-number and a tensor that requires grad (its gradient would be
    dropped) are ValueErrors naming the argument."""
    if impl == "cpu" and not hrops.build_info()["cpu_kernels"]:
        pytest.skip("no compiled CPU kernels")
    x, bias = torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    if isinstance(expected, dict):
        torch.testing.assert_close(hrops.fused_bias_leaky_relu(x, bias, **kwargs, impl=impl),
                                   hrops.fused_bias_leaky_relu(x, bias, **expected, impl=impl),
                                   atol=0, rtol=0)
    else:
        with pytest.raises(ValueError, match=expected):
            hrops.fused_bias_leaky_relu(x, bias, **kwargs, impl=impl)


def test_errors():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"bias must have shape \(C,\) = \(3,\)"):
        hrops.fused_bias_leaky_relu(x, torch.randn(4))
    with pytest.raises(ValueError, match="bias must be a 1-D"):
        hrops.fused_bias_leaky_relu(x, torch.randn(1, 3))
    with pytest.raises(ValueError, match="same dtype"):
        hrops.fused_bias_leaky_relu(x, torch.randn(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, \*\)"):
        hrops.fused_bias_leaky_relu(torch.randn(5))
    with pytest.raises(ValueError, match="negative_slope must be a real number >= 0, got -0.1"):
        hrops.fused_bias_leaky_relu(x, None, -0.1)
    with pytest.raises(ValueError, match="scale must be a real number > 0, got 0.0"):
        hrops.fused_bias_leaky_relu(x, None, 0.2, 0.0)
    with pytest.raises(ValueError, match="float32, float64"):
        hrops.fused_bias_leaky_relu(x.int())


def test_raw_kernel_checks():
    if not hrops.build_info()["cpu_kernels"]:
        pytest.skip("no compiled CPU kernels")
    x = torch.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match=r"bias must have shape \(C,\)"):
        torch.ops.hrops_C.fused_bias_leaky_relu(x, torch.randn(2), 0.2, 1.0)
    with pytest.raises(RuntimeError, match="negative_slope must be >= 0"):
        torch.ops.hrops_C.fused_bias_leaky_relu(x, None, -1.0, 1.0)
    with pytest.raises(RuntimeError, match="grad must have the output's shape"):
        torch.ops.hrops_C._fused_bias_leaky_relu_backward(torch.randn(2, 3), x, None, 0.2, 1.0,
                                                         True)
