"""Test setup: thread count, Triton interpreter on GPU-less machines, and the
list of implementations available here."""
import os
import sys

import torch

# Triton kernels run on CPU tensors only under the interpreter, which must be
# switched on before triton is imported (the @triton.jit decorators read it).
if not torch.cuda.is_available():
    assert "triton" not in sys.modules, "triton was imported before TRITON_INTERPRET was set"
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

# One thread by default: with 2 OpenMP threads and another process on the
# second core every parallel region pays a scheduler tick. Tests of the
# parallel paths set their own count.
torch.set_num_threads(int(os.environ.get("HROPS_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
