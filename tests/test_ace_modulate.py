"""The fused ACE epilogue against SEAN's eager formula: values, dtypes,
gradients (the fused backward op, its alpha sums over several blocks, at 1
and 2 threads), opcheck, compile."""
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


def _grads(impl, device, dtype, blend, shape, seed=0):
    """Gradients of every input of ace_modulate for a seeded output grad."""
    gen = torch.Generator().manual_seed(seed)
    x, gs, bs, ga, ba, g = (torch.randn(shape, generator=gen, dtype=torch.float64)
                            for _ in range(6))
    alpha = torch.rand(2, generator=gen, dtype=torch.float64)
    args = [x, gs, bs] + ([ga, ba, alpha] if blend else [])
    args = [t.to(device, dtype).requires_grad_() for t in args]
    hrops.ace_modulate(*args, impl=impl).backward(g.to(device, dtype))
    return [t.grad.cpu() for t in args]


# (1, 3, 97, 101): the backward's alpha sums over two blocks, the second partial
@pytest.mark.parametrize("impl,device", region_impls())
@pytest.mark.parametrize("blend", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 3, 97, 101)])
def test_backward_matches_eager(impl, device, blend, shape):
    want = _grads("ref", "cpu", torch.float64, blend, shape)
    for dtype in TOL:
        got = _grads(impl, device, dtype, blend, shape)
        # alpha's gradient sums over the map: its error grows with the element count
        scale = [1.0] * 3 + [1.0, 1.0, shape[-1] * shape[-2] ** 0.5] * blend
        for name, g, w, k in zip(("x", "gamma_spade", "beta_spade", "gamma_avg", "beta_avg",
                                  "alpha"), got, want, scale):
            tol = dict(TOL[dtype], atol=TOL[dtype]["atol"] * k)
            torch.testing.assert_close(g, w.to(dtype), **tol, msg=f"{dtype} d {name}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_of_large_maps(dtype):
    """Maps whose five gradients pass 32 MiB take the streaming-store path
    (csrc/cpu/stream_store.h), here with a partial last sum block."""
    shape = (1, 7, 487, 501)
    want = _grads("ref", "cpu", torch.float64, True, shape)
    got = _grads("cpu", "cpu", dtype, True, shape)
    for name, g, w in zip(("x", "gamma_spade", "beta_spade", "gamma_avg", "beta_avg"), got, want):
        torch.testing.assert_close(g, w.to(dtype), **TOL[dtype], msg=f"d {name}")
    torch.testing.assert_close(got[5], want[5].to(dtype), rtol=TOL[dtype]["rtol"],
                               atol=TOL[dtype]["atol"] * shape[-1] * shape[-2] ** 0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_alpha_sum_does_not_depend_on_threads(dtype):
    """The alpha gradient's sums are reduced per fixed block in a fixed
    order: bit for bit the same at 1 and 2 threads."""
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(_grads("cpu", "cpu", dtype, True, (2, 4, 96, 96)))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_backward_op_opcheck_and_errors():
    (x, gs, bs, ga, ba), alpha = _maps(torch.float32)
    g = torch.randn_like(x)
    op = torch.ops.hrops._ace_modulate_backward.default
    torch.library.opcheck(op, (g, x, gs, bs, ga, ba, alpha, "cpu"))
    torch.library.opcheck(op, (g, x, gs, bs, None, None, None, "cpu"))
    with pytest.raises(RuntimeError, match="grad must have the output's shape"):
        op(g[:1], x, gs, bs, ga, ba, alpha, "cpu")
    empty = [t[:0] for t in (g, x, gs, bs, ga, ba)]
    grads = op(*empty, alpha, "cpu")
    assert [t.shape for t in grads[:5]] == [x[:0].shape] * 5 and grads[5].tolist() == [0, 0]


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
