"""The fused ACE epilogue against SEAN's eager formula: values, dtypes,
gradients, opcheck, compile."""
import pytest
import torch

import hrops
from hrops.ref import ace_modulate as ace_modulate_ref
from region_cases import TOL, region_impls


def _maps(dtype=torch.float64, shape=(2, 3, 5, 7)):
    return [torch.randn(shape, dtype=dtype) for _ in range(5)], torch.rand(2, dtype=dtype)


@pytest.mark.parametrize("impl,device", region_impls())
@pytest.mark.parametrize("blend", [True, False])
def test_matches_eager(impl, device, blend):
    (x, gs, bs, ga, ba), alpha = _maps()
    for dtype in TOL:
        args = [t.to(dtype) for t in (x, gs, bs)]
        extra = [t.to(dtype) for t in (ga, ba, alpha)] if blend else [None] * 3
        want = ace_modulate_ref(*[t.double() if t is not None else None for t in args + extra])
        got = hrops.ace_modulate(*[t.to(device) if t is not None else None for t in args + extra],
                                 impl=impl)
        torch.testing.assert_close(got.cpu(), want.to(dtype), **TOL[dtype], msg=str(dtype))
    strided = torch.randn(2, 3, 5, 14, dtype=torch.float64)[..., ::2]
    strided.copy_(x)
    got = hrops.ace_modulate(*[t.to(device) for t in (strided, gs, bs)], impl=impl)
    torch.testing.assert_close(got.cpu(), ace_modulate_ref(x, gs, bs))


@pytest.mark.parametrize("blend", [True, False])
def test_gradcheck_fp64(blend):
    (x, gs, bs, ga, ba), alpha = _maps(shape=(1, 2, 3, 4))
    args = [x, gs, bs] + ([ga, ba, alpha] if blend else [])
    args = [t.requires_grad_() for t in args]
    f = lambda *a: hrops.ace_modulate(*a, impl="cpu")  # noqa: E731
    assert torch.autograd.gradcheck(f, args)
    assert torch.autograd.gradgradcheck(f, args)


def test_errors_opcheck_compile():
    (x, gs, bs, ga, ba), alpha = _maps(torch.float32)
    with pytest.raises(ValueError, match="given together"):
        hrops.ace_modulate(x, gs, bs, ga, None, alpha)
    with pytest.raises(ValueError, match="shape of x"):
        hrops.ace_modulate(x, gs[:1], bs)
    with pytest.raises(ValueError, match="alpha must have shape"):
        hrops.ace_modulate(x, gs, bs, ga, ba, torch.rand(3))
    args = [t.requires_grad_() for t in (x, gs, bs, ga, ba, alpha)]
    torch.library.opcheck(torch.ops.hrops.ace_modulate.default, (*args, "cpu"))
    torch.library.opcheck(torch.ops.hrops.ace_modulate.default, (*args[:3], None, None, None, "cpu"))
    f = lambda *a: hrops.ace_modulate(*a, impl="cpu")  # noqa: E731
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(*args)
    torch.testing.assert_close(got, f(*args))
    got.sum().backward()
    assert all(t.grad is not None for t in args)


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_alpha_must_match_x_device_and_dtype(impl):
    """alpha blends in x's dtype on x's device: a float64 alpha would make the
    reference's output float64, a meta one has no values."""
    (x, gs, bs, ga, ba), alpha = _maps(torch.float32)
    with pytest.raises(ValueError, match="x and alpha must have the same dtype"):
        hrops.ace_modulate(x, gs, bs, ga, ba, alpha.double(), impl=impl)
    with pytest.raises(ValueError, match="x and alpha must be on the same device"):
        hrops.ace_modulate(x, gs, bs, ga, ba, alpha.to("meta"), impl=impl)
