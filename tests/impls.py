"""Which kernel implementations the tests exercise on this machine."""
import pytest
import torch

import hrops
from hrops import _backends


def requires_cuda(test):
    """Skips `test` without a CUDA device and marks it `cuda`, so that
    `-m cuda` (or `-k cuda`) selects it with every GPU test."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    return pytest.mark.cuda(skip(test))


def kernel_impls(supported=("cpu", "cuda", "triton")):
    """(impl, device) pairs of every compiled or Triton kernel of an op (its
    `supported` impls) runnable here, each to be compared against the
    reference. Unavailable ones are reported as skips, never silently dropped."""
    cases = []
    for impl, device in (("cpu", "cpu"), ("triton", "cpu"), ("cuda", "cuda"), ("triton", "cuda")):
        if impl not in supported:
            continue
        reason = None
        if device == "cuda" and not torch.cuda.is_available():
            reason = "needs a CUDA device"
        elif device == "cpu" and impl == "triton" and torch.cuda.is_available():
            reason = "Triton runs on the GPU here (no interpreter)"
        elif not _backends.available(impl, torch.device(device)):
            reason = f"{impl} kernels not available: {hrops.build_info()}"
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        if impl == "triton":
            marks.append(pytest.mark.triton_interp)
        if device == "cuda":
            marks.append(pytest.mark.cuda)
        cases.append(pytest.param(impl, device, marks=marks, id=f"{impl}-{device}"))
    return cases


def interpreted(impl, device):
    return impl == "triton" and device == "cpu"
