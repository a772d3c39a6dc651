"""Kernels run on the GPU that holds their tensors, not on the current one:
tensors on cuda:1 while cuda:0 is current (the C++ glue's CUDAGuard; the
Triton calls' torch.cuda.device guard in hrops.ops._define). Needs two GPUs."""
import pytest
import torch

import hrops

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason="needs two CUDA devices")]


def _calls():
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g, requires_grad=True)  # noqa: E731
    labels = torch.randint(-1, 4, (2, 6, 7), generator=g)
    return {
        "haar_dwt": (hrops.haar_dwt, (r(2, 3, 6, 8),), ("cuda", "triton")),
        "modulated_dwconv2d": (hrops.modulated_dwconv2d,
                               (r(2, 16, 6, 7), r(2, 16), r(16, 1, 3, 3), r(16, 16, 1, 1), r(16)),
                               ("triton",)),
        "lstu_gates": (lambda *a, impl: hrops.lstu_gates(*a, impl=impl)[0],
                       (r(2, 3, 5, 6), r(2, 3, 5, 6), r(2, 6, 5, 6), r(2, 3, 5, 6)),
                       ("cuda", "triton")),
        "region_avg_pool": (lambda x, impl: hrops.region_avg_pool(x, labels.to(x.device), 4,
                                                                  impl=impl),
                            (r(2, 3, 6, 7),), ("cuda",)),
        "fused_bias_leaky_relu": (hrops.fused_bias_leaky_relu, (r(2, 3, 5, 6), r(3)), ("cuda",)),
    }


@pytest.mark.parametrize("name", list(_calls()))
def test_ops_run_on_their_tensors_device(name):
    fn, args, impls = _calls()[name]
    out = fn(*args, impl="ref")
    grad = torch.randn_like(out)
    want = torch.autograd.grad(out, args, grad)
    for impl in impls:
        with torch.cuda.device(0):
            on1 = [a.detach().to("cuda:1").requires_grad_() for a in args]
            got = fn(*on1, impl=impl)
            assert got.device == torch.device("cuda:1")
            got_grads = torch.autograd.grad(got, on1, grad.to("cuda:1"))
        torch.cuda.synchronize(1)
        torch.testing.assert_close(got.detach().cpu(), out.detach(), atol=1e-4, rtol=1e-4)
        for g, w in zip(got_grads, want):
            torch.testing.assert_close(g.cpu(), w, atol=1e-4, rtol=1e-4)
