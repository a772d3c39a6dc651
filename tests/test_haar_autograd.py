"""Haar autograd (adjoint backward, double backward, nothing saved), opcheck
and torch.compile without graph breaks."""
import pytest
import torch

import hrops
from impls import kernel_impls


@pytest.mark.parametrize("impl,device", kernel_impls())
@pytest.mark.parametrize("shape", [(2, 2, 6, 4), (1, 1, 5, 3)])
def test_gradcheck(impl, device, shape):
    x = torch.randn(shape, dtype=torch.float64, device=device, requires_grad=True)
    out = (shape[2], shape[3])
    assert torch.autograd.gradcheck(lambda t: hrops.haar_dwt(t, impl=impl), (x,))
    assert torch.autograd.gradgradcheck(lambda t: hrops.haar_dwt(t, impl=impl), (x,))
    y = hrops.haar_dwt(x.detach(), impl=impl).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: hrops.haar_idwt(t, out, impl=impl), (y,))
    assert torch.autograd.gradgradcheck(lambda t: hrops.haar_idwt(t, out, impl=impl), (y,))


@pytest.mark.parametrize("impl,device", kernel_impls())
def test_gradient_matches_ref(impl, device):
    x = torch.randn(2, 3, 7, 8, device=device, requires_grad=True)
    g = torch.randn(2, 12, 4, 4, device=device)
    (gx,) = torch.autograd.grad(hrops.haar_dwt(x, impl=impl), x, g)
    (gx_ref,) = torch.autograd.grad(hrops.haar_dwt(x, impl="ref"), x, g)
    torch.testing.assert_close(gx, gx_ref)


def _saved_bytes(fn):
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fn()
    return sum(t.untyped_storage().nbytes() for t in saved)


@pytest.mark.parametrize("impl,device", kernel_impls())
def test_nothing_saved_for_backward(impl, device):
    x = torch.randn(1, 2, 8, 8, device=device, requires_grad=True)
    assert _saved_bytes(lambda: hrops.haar_dwt(x, impl=impl)) == 0
    y = torch.randn(1, 8, 4, 4, device=device, requires_grad=True)
    assert _saved_bytes(lambda: hrops.haar_idwt(y, impl=impl)) == 0


@pytest.mark.parametrize("impl,device", kernel_impls())
def test_opcheck(impl, device):
    x = torch.randn(2, 3, 5, 6, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.hrops.haar_dwt.default, (x, impl))
    torch.library.opcheck(torch.ops.hrops.haar_dwt.default, (x.detach()[:0], impl))
    y = torch.randn(2, 12, 3, 3, device=device)
    low, high = y[:, :3].requires_grad_(), y[:, 3:].unflatten(1, (3, 3)).requires_grad_()
    torch.library.opcheck(torch.ops.hrops.haar_idwt.default, (low, high, 5, 6, impl))
    torch.library.opcheck(torch.ops.hrops.haar_idwt_packed.default, (y.requires_grad_(), 5, 6, impl))


@pytest.mark.compile
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph(backend):
    torch._dynamo.reset()

    def fn(x):
        y = hrops.haar_dwt(x * 2)
        return hrops.haar_idwt(y.relu(), x.shape[-2:]).sum()

    x = torch.randn(2, 3, 9, 8, requires_grad=True)
    compiled = torch.compile(fn, fullgraph=True, backend=backend, dynamic=False)
    out = compiled(x)
    (g,) = torch.autograd.grad(out, x)
    (g_ref,) = torch.autograd.grad(fn(x), x)
    torch.testing.assert_close(out, fn(x))
    torch.testing.assert_close(g, g_ref)
